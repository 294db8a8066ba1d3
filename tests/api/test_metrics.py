"""``/metrics``: Prometheus' text format, parsed with prometheus_client's own
parser; the pool figures agree with ``os-pci`` through boots and deletes."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, create_port, sriov_network
from tests.api.test_servers import boot, boot_env

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(api: Api) -> Samples:
    resp = api.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def pools_from_metrics(samples: Samples) -> dict[tuple[str, ...], tuple[int, int]]:
    """(host, vendor, product, dev_type) -> (free, total), summed over the other labels."""
    out: dict[tuple[str, ...], list[int]] = {}
    for index, name in enumerate(("pcifleet_pool_free_devices", "pcifleet_pool_total_devices")):
        for labels, value in samples.get(name, []):
            key = (labels["host"], labels["vendor"], labels["product"], labels["dev_type"])
            out.setdefault(key, [0, 0])[index] += int(value)
    return {k: (v[0], v[1]) for k, v in out.items()}


def pools_from_os_pci(api: Api, admin: str) -> dict[tuple[str, ...], tuple[int, int]]:
    resp = api.get(f"{COMPUTE}/os-pci/detail", token=admin)
    assert resp.status_code == 200, resp.text
    devices: list[dict[str, Any]] = resp.json()["pci_devices"]
    total = Tally((d["host"], d["vendor_id"], d["product_id"], d["dev_type"]) for d in devices)
    free = Tally(
        (d["host"], d["vendor_id"], d["product_id"], d["dev_type"])
        for d in devices
        if d["status"] == "available"
    )
    return {k: (free[k], n) for k, n in total.items()}


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for got, v in samples.get(name, []) if labels.items() <= got.items())


def test_pool_figures_agree_with_os_pci_through_boots_and_deletes(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    before = scrape(api)
    assert pools_from_metrics(before) == pools_from_os_pci(api, tokens.admin)
    vf = ("compute1", "8086", "154c", "type-VF")
    free_vfs = pools_from_metrics(before)[vf][0]
    assert free_vfs > 0
    (physnet1,) = [
        labels
        for labels, _ in before["pcifleet_pool_free_devices"]
        if labels["dev_type"] == "type-VF" and labels["physical_network"] == "physnet1"
    ]
    assert physnet1["numa"] != "" and physnet1["host"] == "compute1"

    servers = []
    for _ in range(2):
        p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
        resp = boot(api, tokens.demo, env, [{"port": p["id"]}])
        assert resp.status_code == 202, resp.text
        servers.append(resp.json()["server"]["id"])
    agent.run_all()
    booted = scrape(api)
    assert pools_from_metrics(booted) == pools_from_os_pci(api, tokens.admin)
    assert pools_from_metrics(booted)[vf][0] == free_vfs - 2
    assert value(booted, "pcifleet_claims_total") - value(before, "pcifleet_claims_total") == 2
    assert value(booted, "pcifleet_scheduling_duration_seconds_count") >= 2
    assert value(booted, "pcifleet_agent_report_age_seconds", host="compute1") >= 0
    assert (
        value(
            booted,
            "pcifleet_http_request_duration_seconds_count",
            route="/compute/v2.1/servers",
            method="POST",
            status="202",
        )
        >= 2
    )

    for server_id in servers:
        assert api.delete(f"{COMPUTE}/servers/{server_id}", token=tokens.demo).status_code == 204
    agent.run_all()
    deleted = scrape(api)
    assert pools_from_metrics(deleted) == pools_from_os_pci(api, tokens.admin)
    assert pools_from_metrics(deleted)[vf][0] == free_vfs
    released = value(deleted, "pcifleet_releases_total") - value(booted, "pcifleet_releases_total")
    assert released >= 2
    assert value(deleted, "pcifleet_jobs_queued") == 0


def test_no_valid_host_is_counted_by_reason(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    before = value(scrape(api), "pcifleet_no_valid_host_total", reason="PCI")
    net7 = sriov_network(api, tokens.admin, physnet="physnet7", vlan=700)
    p = create_port(api, tokens.demo, net7["id"], **{"binding:vnic_type": "direct"})
    assert boot(api, tokens.demo, env, [{"port": p["id"]}]).status_code == 202
    after = scrape(api)
    assert value(after, "pcifleet_no_valid_host_total", reason="PCI") == before + 1
    # labels stay bounded: no request ids or port ids as label values
    for labels, _ in after["pcifleet_no_valid_host_total"]:
        assert ":" not in labels["reason"] and len(labels["reason"]) < 20


@pytest.fixture
def remote_api(app: FastAPI) -> Iterator[Api]:
    """The API as a client on another machine sees it."""
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 40000)),
            base_url="http://pcifleet.test",
        )
        yield Api(client, portal)
        portal.call(client.aclose)


def test_off_the_machine_only_admins_may_read_metrics(remote_api: Api, tokens: Tokens) -> None:
    assert remote_api.get("/metrics").status_code == 401
    assert remote_api.get("/metrics", token=tokens.demo).status_code == 403
    resp = remote_api.get("/metrics", token=tokens.admin)
    assert resp.status_code == 200 and "pcifleet_jobs_queued" in resp.text


def test_a_trailing_slash_is_timed_under_its_route(api: Api, tokens: Tokens) -> None:
    before = scrape(api)
    for path in (f"{COMPUTE}/flavors/", f"{COMPUTE}/flavors"):
        assert api.get(path, token=tokens.demo).status_code == 200
    after = scrape(api)
    count = "pcifleet_http_request_duration_seconds_count"
    route = {"method": "GET", "route": "/compute/v2.1/flavors", "status": "200"}
    assert value(after, count, **route) - value(before, count, **route) == 2
    unmatched = {"method": "GET", "route": "unmatched"}
    assert value(after, count, **unmatched) == value(before, count, **unmatched)


def test_sql_statements_are_counted(api: Api, tokens: Tokens) -> None:
    def statements() -> float:
        ((_labels, value),) = scrape(api)["pcifleet_sql_statements_total"]
        return value

    before = statements()
    resp = api.post(
        "/networking/v2.0/networks", token=tokens.demo, json={"network": {"name": "counted"}}
    )
    assert resp.status_code == 201, resp.text
    assert statements() > before + 1  # the token check, the insert, at least
