"""An in-process client for the API: httpx over ASGITransport, driven from sync tests
through one event loop per test (anyio's blocking portal)."""

from __future__ import annotations

from typing import Any

import httpx
from anyio.from_thread import BlockingPortal


class Api:
    """``api.get("/networking/v2.0/networks", token=demo)`` -> httpx.Response."""

    def __init__(self, client: httpx.AsyncClient, portal: BlockingPortal) -> None:
        self.client = client
        self.portal = portal

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["X-Auth-Token"] = token
        return self.portal.call(
            lambda: self.client.request(method, path, headers=all_headers, **kwargs)
        )

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("HEAD", path, **kwargs)


def password_auth(user: str, password: str, project: str) -> dict[str, Any]:
    domain = {"name": "Default"}
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": domain, "password": password}},
            },
            "scope": {"project": {"name": project, "domain": domain}},
        }
    }


def compute_error(resp: httpx.Response, status: int, kind: str) -> str:
    """The message of a compute error body, after checking status and fault name."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert list(body) == [kind], body
    assert body[kind]["code"] == status
    message: str = body[kind]["message"]
    return message


def neutron_error(resp: httpx.Response, status: int, kind: str | None = None) -> str:
    assert resp.status_code == status, resp.text
    err = resp.json()["NeutronError"]
    if kind is not None:
        assert err["type"] == kind, err
    assert err["detail"] == ""
    message: str = err["message"]
    return message


NET = "/networking/v2.0"
COMPUTE = "/compute/v2.1"


def create_network(api: Api, token: str, **fields: Any) -> dict[str, Any]:
    resp = api.post(f"{NET}/networks", token=token, json={"network": fields})
    assert resp.status_code == 201, resp.text
    network: dict[str, Any] = resp.json()["network"]
    return network


def create_subnet(
    api: Api, token: str, network_id: str, cidr: str, **fields: Any
) -> dict[str, Any]:
    body = {"subnet": {"network_id": network_id, "cidr": cidr, "ip_version": 4, **fields}}
    resp = api.post(f"{NET}/subnets", token=token, json=body)
    assert resp.status_code == 201, resp.text
    subnet: dict[str, Any] = resp.json()["subnet"]
    return subnet


def create_port(api: Api, token: str, network_id: str, **fields: Any) -> dict[str, Any]:
    resp = api.post(
        f"{NET}/ports", token=token, json={"port": {"network_id": network_id, **fields}}
    )
    assert resp.status_code == 201, resp.text
    port: dict[str, Any] = resp.json()["port"]
    return port


def sriov_network(
    api: Api, admin: str, *, physnet: str = "physnet1", vlan: int = 100
) -> dict[str, Any]:
    """A shared vlan network on ``physnet`` with one /24 subnet (as the admin)."""
    net = create_network(
        api,
        admin,
        name=f"{physnet}-{vlan}",
        shared=True,
        **{
            "provider:network_type": "vlan",
            "provider:physical_network": physnet,
            "provider:segmentation_id": vlan,
        },
    )
    create_subnet(api, admin, net["id"], f"10.{vlan % 250}.0.0/24")
    return net
