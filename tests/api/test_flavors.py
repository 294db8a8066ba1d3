"""Compute flavors: admin-only management, extra specs with validated PCI
aliases, microversion negotiation and compute error bodies."""

from __future__ import annotations

from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, compute_error

FLAVOR = {"name": "m1.small", "ram": 2048, "vcpus": 2, "disk": 10}


def create_flavor(api: Api, token: str, **fields: object) -> dict[str, object]:
    resp = api.post(f"{COMPUTE}/flavors", token=token, json={"flavor": {**FLAVOR, **fields}})
    assert resp.status_code == 200, resp.text
    flavor: dict[str, object] = resp.json()["flavor"]
    return flavor


def test_admin_creates_member_lists_and_shows(api: Api, tokens: Tokens) -> None:
    flavor = create_flavor(api, tokens.admin, id="small")
    assert flavor["id"] == "small" and flavor["os-flavor-access:is_public"] is True
    listed = api.get(f"{COMPUTE}/flavors", token=tokens.demo).json()["flavors"]
    assert [f["name"] for f in listed] == ["m1.small"]
    detail = api.get(f"{COMPUTE}/flavors/detail", token=tokens.demo).json()["flavors"][0]
    assert detail["ram"] == 2048 and detail["swap"] == ""  # 2.1 shows a zero swap as ""
    shown = api.get(f"{COMPUTE}/flavors/small", token=tokens.demo)
    assert shown.json()["flavor"]["vcpus"] == 2
    assert shown.headers["OpenStack-API-Version"] == "compute 2.1"


def test_member_may_not_manage_flavors(api: Api, tokens: Tokens) -> None:
    resp = api.post(f"{COMPUTE}/flavors", token=tokens.demo, json={"flavor": FLAVOR})
    compute_error(resp, 403, "forbidden")
    flavor = create_flavor(api, tokens.admin)
    specs = {"extra_specs": {"hw:cpu_policy": "dedicated"}}
    compute_error(
        api.post(f"{COMPUTE}/flavors/{flavor['id']}/os-extra_specs", token=tokens.demo, json=specs),
        403,
        "forbidden",
    )
    compute_error(
        api.delete(f"{COMPUTE}/flavors/{flavor['id']}", token=tokens.demo), 403, "forbidden"
    )


def test_pci_alias_extra_spec_is_validated(api: Api, tokens: Tokens) -> None:
    flavor = create_flavor(api, tokens.admin)
    url = f"{COMPUTE}/flavors/{flavor['id']}/os-extra_specs"
    ok = api.post(url, token=tokens.admin, json={"extra_specs": {"pci_passthrough:alias": "gpu:1"}})
    assert ok.json() == {"extra_specs": {"pci_passthrough:alias": "gpu:1"}}
    unknown = api.post(
        url, token=tokens.admin, json={"extra_specs": {"pci_passthrough:alias": "tpu:1"}}
    )
    assert "'tpu'" in compute_error(unknown, 400, "badRequest")
    for bad in ("gpu", "gpu:0", "gpu:x", "gpu:1:2", ""):
        resp = api.post(
            url, token=tokens.admin, json={"extra_specs": {"pci_passthrough:alias": bad}}
        )
        assert "pci_passthrough:alias" in compute_error(resp, 400, "badRequest"), bad
    assert api.get(url, token=tokens.demo).json() == {
        "extra_specs": {"pci_passthrough:alias": "gpu:1"}
    }
    one = api.put(f"{url}/hw:mem_page_size", token=tokens.admin, json={"hw:mem_page_size": "large"})
    assert one.json() == {"hw:mem_page_size": "large"}
    mismatch = api.put(f"{url}/a", token=tokens.admin, json={"b": "1"})
    compute_error(mismatch, 400, "badRequest")
    assert api.delete(f"{url}/hw:mem_page_size", token=tokens.admin).status_code == 200
    compute_error(api.get(f"{url}/hw:mem_page_size", token=tokens.admin), 404, "itemNotFound")
    newer = api.get(
        f"{COMPUTE}/flavors/{flavor['id']}",
        token=tokens.demo,
        headers={"OpenStack-API-Version": "compute 2.61"},
    )
    assert newer.json()["flavor"]["extra_specs"] == {"pci_passthrough:alias": "gpu:1"}


def test_microversions(api: Api, tokens: Tokens) -> None:
    root = api.get("/compute/v2.1").json()["version"]
    assert root["min_version"] == "2.1" and root["version"] == "2.88"
    latest = api.get(
        f"{COMPUTE}/flavors", token=tokens.demo, headers={"OpenStack-API-Version": "compute latest"}
    )
    assert latest.headers["OpenStack-API-Version"] == "compute 2.88"
    legacy = api.get(
        f"{COMPUTE}/flavors", token=tokens.demo, headers={"X-OpenStack-Nova-API-Version": "2.55"}
    )
    assert legacy.headers["X-OpenStack-Nova-API-Version"] == "2.55"
    for bad in ("compute 2.200", "compute 3.0", "compute x"):
        resp = api.get(
            f"{COMPUTE}/flavors", token=tokens.demo, headers={"OpenStack-API-Version": bad}
        )
        compute_error(resp, 406, "notAcceptable")
    described = create_flavor(api, tokens.admin, name="d")
    assert "description" not in described
    with_description = api.post(
        f"{COMPUTE}/flavors",
        token=tokens.admin,
        json={"flavor": {**FLAVOR, "name": "e", "description": "for GPUs"}},
        headers={"OpenStack-API-Version": "compute 2.55"},
    )
    assert with_description.json()["flavor"]["description"] == "for GPUs"
    too_old = api.post(
        f"{COMPUTE}/flavors",
        token=tokens.admin,
        json={"flavor": {**FLAVOR, "name": "f", "description": "x"}},
    )
    compute_error(too_old, 400, "badRequest")


def test_conflicts_missing_and_hostile_input(api: Api, tokens: Tokens) -> None:
    create_flavor(api, tokens.admin, id="one")
    compute_error(
        api.post(
            f"{COMPUTE}/flavors",
            token=tokens.admin,
            json={"flavor": {**FLAVOR, "id": "one", "name": "other"}},
        ),
        409,
        "conflictingRequest",
    )
    compute_error(
        api.post(f"{COMPUTE}/flavors", token=tokens.admin, json={"flavor": FLAVOR}),
        409,
        "conflictingRequest",
    )
    compute_error(api.get(f"{COMPUTE}/flavors/nope", token=tokens.demo), 404, "itemNotFound")
    cases = [
        ({"flavor": {**FLAVOR, "ram": -1}}, "flavor.ram"),
        ({"flavor": {**FLAVOR, "ram": "lots"}}, "flavor.ram"),
        ({"flavor": {**FLAVOR, "vcpus": 2**40}}, "flavor.vcpus"),
        ({"flavor": {**FLAVOR, "name": "n" * 256}}, "flavor.name"),
        ({"flavor": {**FLAVOR, "gpu": True}}, "flavor.gpu"),
        ({"flavor": {"name": "x"}}, "flavor.ram"),
        ({"flavor": {**FLAVOR, "id": "a/b"}}, "flavor.id"),
        ({"flavour": FLAVOR}, "flavour"),
    ]
    for body, field in cases:
        resp = api.post(f"{COMPUTE}/flavors", token=tokens.admin, json=body)
        assert field in compute_error(resp, 400, "badRequest"), body
    raw = api.post(
        f"{COMPUTE}/flavors",
        token=tokens.admin,
        content=b"{]",
        headers={"Content-Type": "application/json"},
    )
    assert "Malformed" in compute_error(raw, 400, "badRequest")
    assert api.delete(f"{COMPUTE}/flavors/one", token=tokens.admin).status_code == 202
    compute_error(api.get(f"{COMPUTE}/flavors/one", token=tokens.admin), 404, "itemNotFound")
