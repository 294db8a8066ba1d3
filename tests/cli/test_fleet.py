"""``pcifleet pools``, ``capacity`` and ``explain-boot`` against a live API,
logging in with a clouds.yaml as ``pcifleet up`` writes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from pcifleet.cli.main import cli
from tests.api.inventory import sample_report
from tests.api.live import AgentThread, Live, live_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(tmp_path_factory.mktemp("fleet")) as server:
        agent = AgentThread(server, "compute1")
        agent.start()
        yield server
        agent.stop.set()
        agent.join(timeout=5)


def run(live: Live, *args: str, cloud: str = "pcifleet") -> Result:
    env = {"OS_CLIENT_CONFIG_FILE": str(live.clouds_yaml), "OS_CLOUD": cloud, "COLUMNS": "200"}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def admin_post(live: Live, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(f"{live.url}{path}", json=body, headers={"X-Auth-Token": live.token()})
    assert resp.status_code in (200, 201), resp.text
    out: dict[str, Any] = resp.json()
    return out


def reported_pools() -> dict[tuple[str, str], int]:
    """(dev_type, physical_network) -> devices, from what the agent reports."""
    out: dict[tuple[str, str], int] = {}
    for item in sample_report(0)["devices"]:
        key = (item["device"]["dev_type"], (item["tags"] or {}).get("physical_network") or "")
        out[key] = out.get(key, 0) + 1
    return out


def test_pools_shows_what_the_host_reported(live: Live) -> None:
    result = run(live, "pools", "--json")
    assert result.exit_code == 0, result.output
    (host,) = json.loads(result.output)["hosts"]
    assert host["host"] == "compute1"
    got: dict[tuple[str, str], int] = {}
    for pool in host["pools"]:
        key = (pool["dev_type"], (pool["tags"] or {}).get("physical_network") or "")
        got[key] = got.get(key, 0) + pool["total"]
    assert got == reported_pools()
    table = run(live, "pools")
    assert table.exit_code == 0, table.output
    assert "compute1" in table.output and "physnet2" in table.output
    assert "devices free" in table.output


def test_capacity_and_explain_boot(live: Live, tmp_path: Path) -> None:
    flavor = admin_post(
        live,
        "/compute/v2.1/flavors",
        {"flavor": {"name": "cli.gpu", "ram": 512, "vcpus": 1, "disk": 1}},
    )["flavor"]
    admin_post(
        live,
        f"/compute/v2.1/flavors/{flavor['id']}/os-extra_specs",
        {"extra_specs": {"pci_passthrough:alias": "gpu:1"}},
    )
    gpus = sum(1 for d in sample_report(0)["devices"] if d["device"]["vendor_id"] == "10de")
    result = run(
        live, "capacity", "--flavor", "cli.gpu", "--port-type", "direct:physnet1", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["per_host"] == {"compute1": gpus}
    table = run(live, "capacity", "--flavor", "cli.gpu")
    assert table.exit_code == 0 and f"{gpus} more fit on 1 host(s)" in table.output, table.output

    fits = run(live, "explain-boot", "--flavor", "cli.gpu", "--port-type", "direct:physnet1")
    assert fits.exit_code == 0, fits.output
    assert "1 of 1 host(s) would take this server" in fits.output
    nowhere = run(live, "explain-boot", "--port-type", "direct:physnet7", "--json")
    assert nowhere.exit_code == 1
    (host,) = json.loads(nowhere.output)["hosts"]
    assert [f["filter"] for f in host["failures"]] == ["PCI"]
    assert "physnet7" in host["failures"][0]["request"]


def test_fleet_commands_say_what_is_wrong(live: Live, tmp_path: Path) -> None:
    member = run(live, "pools", cloud="pcifleet-demo")
    assert member.exit_code == 1 and "admins only" in member.output
    unknown_cloud = run(live, "pools", cloud="nope")
    assert unknown_cloud.exit_code == 1 and "pcifleet-demo" in unknown_cloud.output
    missing = CliRunner().invoke(cli, ["pools", "--clouds-yaml", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 1 and "pcifleet up" in missing.output
    bad = run(live, "capacity", "--port-type", "physnet1")
    assert bad.exit_code == 1 and "VNIC_TYPE:PHYSNET" in bad.output
    no_flavor = run(live, "explain-boot", "--flavor", "no-such-flavor")
    assert no_flavor.exit_code == 1 and "no-such-flavor" in no_flavor.output
    assert run(live, "capacity").exit_code == 1
