"""The hostile requests of issue #14, one by one: each answers a 4xx in its
service's JSON error body, with the request id, and never a plain-text 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine

from pcifleet.api.app import create_app
from pcifleet.api.settings import ApiSettings
from pcifleet.store.db import make_engine
from tests.api.conftest import Tokens, in_process_client
from tests.api.helpers import COMPUTE, NET, Api

LIST_ROUTES = [
    f"{COMPUTE}/servers",
    f"{COMPUTE}/servers/detail",
    f"{COMPUTE}/flavors",
    f"{COMPUTE}/flavors/detail",
    f"{COMPUTE}/os-hypervisors",
    f"{NET}/networks",
    f"{NET}/subnets",
    f"{NET}/ports",
    "/image/v2/images",
    "/identity/v3/users",
    "/v3/projects",
]


def assert_json_error(resp: httpx.Response, status: int = 400) -> None:
    assert resp.status_code == status, (resp.request.url, resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("application/json"), resp.text[:200]
    assert resp.headers["x-openstack-request-id"].startswith("req-")
    assert resp.json()


@pytest.mark.parametrize(
    "limit", ["%C2%B2", "9" * 5000, "-1", "1e3", "%00", "99999999999999999999"]
)
def test_a_bad_limit_is_a_400_on_every_list(api: Api, tokens: Tokens, limit: str) -> None:
    for route in LIST_ROUTES:
        resp = api.get(f"{route}?limit={limit}", token=tokens.admin)
        assert_json_error(resp)
        assert "limit" in resp.text


@pytest.mark.parametrize("key", ["minRam", "minDisk"])
@pytest.mark.parametrize("value", ["99999999999999999999", "%C2%B2", "-5", "x"])
def test_flavor_minimums_are_bounded_numbers(
    api: Api, tokens: Tokens, key: str, value: str
) -> None:
    resp = api.get(f"{COMPUTE}/flavors?{key}={value}", token=tokens.demo)
    assert_json_error(resp)
    assert key in resp.text


def test_a_pci_device_id_that_is_no_number_is_a_404(api: Api, tokens: Tokens) -> None:
    for device in ("%C2%B2", "9" * 5000, "-1", "0x10"):
        resp = api.get(f"{COMPUTE}/os-pci/{device}", token=tokens.admin)
        assert_json_error(resp, 404)
    # a control character is no id at all
    assert_json_error(api.get(f"{COMPUTE}/os-pci/%00", token=tokens.admin), 400)


def test_a_huge_microversion_is_a_406_before_any_token(api: Api) -> None:
    for version in ("2." + "9" * 5000, "2.\u00b2", "\u00b2.1", "2.1" + "0" * 60):
        resp = api.get(
            f"{COMPUTE}/servers", headers={"OpenStack-API-Version": f"compute {version}".encode()}
        )
        assert_json_error(resp, 406)


def test_a_task_id_that_is_no_number_is_refused_as_json(api: Api) -> None:
    resp = api.post(
        "/pcifleet/v1/tasks/%C2%B2/result",
        headers={"Authorization": "Bearer x"},
        json={"status": "ok"},
    )
    assert resp.status_code in (401, 404), resp.text
    assert_json_error(resp, resp.status_code)


@pytest.mark.parametrize(
    "route", [f"{COMPUTE}/servers", f"{NET}/networks", "/image/v2/images", f"{COMPUTE}/os-pci"]
)
def test_a_nul_in_a_query_is_a_400(api: Api, tokens: Tokens, route: str) -> None:
    for query in ("name=a%00b", "address=0000%00", "status=%00", "x%00=1"):
        resp = api.get(f"{route}?{query}", token=tokens.admin)
        assert_json_error(resp)


NUL_BODIES = [
    ("POST", f"{NET}/networks", {"network": {"name": "a\x00b"}}),
    ("POST", f"{COMPUTE}/flavors", {"flavor": {"name": "f\x00", "ram": 1, "vcpus": 1, "disk": 1}}),
    ("POST", "/image/v2/images", {"name": "i\x00", "disk_format": "raw"}),
    ("POST", f"{NET}/networks", {"network": {"name": "ok", "description": "\x00"}}),
    ("POST", f"{COMPUTE}/servers/x/action", {"os-resetState": {"state": "\x00"}}),
]


def refuses_nul(api: Api, admin: str) -> None:
    for method, route, body in NUL_BODIES:
        resp = api.request(method, route, token=admin, json=body)
        assert_json_error(resp)
        assert "NUL" in resp.text
    for route in (f"{COMPUTE}/os-pci?address=0000%00", f"{NET}/networks?name=%00"):
        assert_json_error(api.get(route, token=admin))
    # nothing was made
    assert not [n for n in api.get(f"{NET}/networks", token=admin).json()["networks"]]


def test_a_nul_in_a_body_is_a_400_naming_the_field(api: Api, tokens: Tokens) -> None:
    refuses_nul(api, tokens.admin)


def read_only_story(api: Api, token: str) -> None:
    assert api.get(f"{NET}/networks", token=token).status_code == 200
    resp = api.post(f"{NET}/networks", token=token, json={"network": {"name": "n"}})
    assert_json_error(resp, 503)
    assert "read-only" in resp.json()["NeutronError"]["message"]
    assert resp.headers["Retry-After"]


def test_a_read_only_store_says_so(engine: Engine, settings: ApiSettings, tokens: Tokens) -> None:
    read_only = make_engine(f"sqlite:///file:{engine.url.database}?mode=ro&uri=true")
    with in_process_client(create_app(settings, read_only)) as api:
        read_only_story(api, tokens.admin)
    read_only.dispose()


def test_a_chunked_body_past_the_limit_is_a_413(api: Api, tokens: Tokens) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"network": {"name": "'
        for _ in range(11):
            yield b"x" * (1 << 20)
        yield b'"}}'

    resp = api.post(f"{NET}/networks", token=tokens.admin, content=chunks())
    assert_json_error(resp, 413)


def test_a_method_a_route_lacks_is_a_405_with_allow(api: Api, tokens: Tokens) -> None:
    resp = api.request("PATCH", f"{NET}/networks", token=tokens.admin)
    assert_json_error(resp, 405)
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}
