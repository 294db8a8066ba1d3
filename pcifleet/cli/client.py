"""The CLI's way to the API: the cloud of a clouds.yaml, a Keystone token, JSON.

``pcifleet up`` writes ``clouds.yaml`` into its data directory with the clouds
``pcifleet`` (admin) and ``pcifleet-demo``; the operator commands read the same
file the ``openstack`` CLI does (``OS_CLIENT_CONFIG_FILE``, else the one in the
default data directory) and the same cloud (``--os-cloud``/``OS_CLOUD``,
default ``pcifleet``), log in with its password, and call ``/pcifleet/v1``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pcifleet.cli.errors import CliError

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_CLOUD = "pcifleet"


def api_options(f: F) -> F:
    """``--os-cloud`` and ``--clouds-yaml``, as the ``openstack`` CLI names them."""
    f = click.option(
        "--clouds-yaml",
        "clouds_yaml",
        envvar="OS_CLIENT_CONFIG_FILE",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="The clouds.yaml to read [env OS_CLIENT_CONFIG_FILE; default: the one "
        "`pcifleet up` writes, ~/.local/share/pcifleet/clouds.yaml].",
    )(f)
    f = click.option(
        "--os-cloud",
        "cloud",
        envvar="OS_CLOUD",
        default=DEFAULT_CLOUD,
        show_default=True,
        help="Cloud of the clouds.yaml to use (an admin's) [env OS_CLOUD].",
    )(f)
    return f


def _identity_url(auth_url: str) -> str:
    base = auth_url.rstrip("/")
    return base if base.endswith("/v3") else base + "/v3"


def _api_root(auth_url: str) -> str:
    base = auth_url.rstrip("/")
    return base[: -len("/v3")] if base.endswith("/v3") else base


class FleetClient:
    """A logged-in client of one cloud; ``get`` answers JSON or raises CliError."""

    def __init__(self, cloud: str, clouds_yaml: Path | None, timeout: float = 30.0) -> None:
        import httpx
        import yaml

        if clouds_yaml is None:
            import platformdirs

            clouds_yaml = Path(platformdirs.user_data_dir("pcifleet", appauthor=False))
            clouds_yaml /= "clouds.yaml"
        try:
            doc = yaml.safe_load(clouds_yaml.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise CliError(
                f"cannot read {clouds_yaml} ({exc.strerror}): start `pcifleet up`, or give "
                "--clouds-yaml / OS_CLIENT_CONFIG_FILE"
            ) from None
        except yaml.YAMLError as exc:
            raise CliError(f"{clouds_yaml} is not valid YAML: {exc}") from None
        clouds = doc.get("clouds") if isinstance(doc, dict) else None
        entry = clouds.get(cloud) if isinstance(clouds, dict) else None
        auth = entry.get("auth") if isinstance(entry, dict) else None
        if not isinstance(auth, dict) or not isinstance(auth.get("auth_url"), str):
            known = ", ".join(sorted(clouds)) if isinstance(clouds, dict) else "none"
            raise CliError(f"{clouds_yaml} has no cloud {cloud!r} with auth (clouds: {known})")
        self.root = _api_root(auth["auth_url"])
        self.http = httpx.Client(base_url=self.root, timeout=timeout)
        self.token = self._login(auth)

    def _login(self, auth: dict[str, Any]) -> str:
        import httpx

        user_domain = {"name": auth.get("user_domain_name") or "Default"}
        project_domain = {"name": auth.get("project_domain_name") or "Default"}
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": auth.get("username"),
                            "domain": user_domain,
                            "password": auth.get("password"),
                        }
                    },
                },
                "scope": {"project": {"name": auth.get("project_name"), "domain": project_domain}},
            }
        }
        url = _identity_url(auth["auth_url"]) + "/auth/tokens"
        try:
            resp = self.http.post(url, json=body)
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the API at {self.root}: {exc} (is `pcifleet up` running?)"
            ) from None
        if resp.status_code != 201:
            raise CliError(f"login as {auth.get('username')!r} failed: {_detail(resp)}")
        return str(resp.headers["X-Subject-Token"])

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        import httpx

        try:
            resp = self.http.get(path, params=params, headers={"X-Auth-Token": self.token})
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach the API at {self.root}: {exc}") from None
        if resp.status_code >= 400:
            raise CliError(_detail(resp))
        return resp.json()


def _detail(resp: Any) -> str:
    """The message of an error body, placement-style or OpenStack-style."""
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}"
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("detail") or errors[0].get("title"))
        for value in body.values():
            if isinstance(value, dict) and "message" in value:
                return str(value["message"])
        if "detail" in body:
            return str(body["detail"])
    return f"HTTP {resp.status_code}"
