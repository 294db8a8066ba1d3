"""``/dashboard`` without a browser: login through Keystone, who sees what,
and hostile input (the browser story is tests/dashboard/test_browser.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.api.agent import FakeAgent
from tests.api.conftest import ADMIN_PASSWORD, ALICE_PASSWORD, DEMO_PASSWORD, Tokens
from tests.api.helpers import Api, create_port, sriov_network
from tests.api.test_servers import boot, boot_env

COOKIE = "pcifleet_dashboard"


def log_in(api: Api, user: str, password: str, project: str = "") -> httpx.Response:
    form = {"username": user, "password": password, "project": project}
    return api.post("/dashboard/login", data=form)


def test_without_a_session_every_page_goes_to_the_login(api: Api) -> None:
    for path in ("/dashboard", "/dashboard/hosts/compute1"):
        resp = api.get(path)
        assert resp.status_code == 303 and resp.headers["location"] == "/dashboard/login"
    api.client.cookies.set(COOKIE, "not-a-token", path="/dashboard")
    assert api.get("/dashboard").status_code == 303
    assert api.get("/dashboard/login").status_code == 200


def test_login_sets_a_session_cookie_only_for_a_good_password(api: Api) -> None:
    bad = log_in(api, "admin", "wrong")
    assert bad.status_code == 401 and "Log in failed" in bad.text
    assert COOKIE not in bad.headers.get("set-cookie", "")
    ok = log_in(api, "admin", ADMIN_PASSWORD)
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "expires" not in cookie
    assert api.get("/dashboard").status_code == 200
    out = api.post("/dashboard/logout")
    assert out.status_code == 303 and api.get("/dashboard").status_code == 303


def test_admins_see_the_fleet_members_their_own_servers(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    p = create_port(
        api, tokens.demo, env["net"]["id"], name="vf", **{"binding:vnic_type": "direct"}
    )
    server_id = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    agent.run_all()
    assert log_in(api, "admin", ADMIN_PASSWORD).status_code == 303
    fleet = api.get("/dashboard").text
    assert "compute1" in fleet and server_id in fleet and "Capacity per flavor" in fleet
    host = api.get("/dashboard/hosts/compute1").text
    assert server_id in host
    assert api.get("/dashboard/hosts/nope").status_code == 404

    assert log_in(api, "demo", DEMO_PASSWORD).status_code == 303
    mine = api.get("/dashboard").text
    assert server_id in mine and "Capacity per flavor" not in mine
    assert api.get("/dashboard/hosts/compute1").status_code == 403
    assert log_in(api, "alice", ALICE_PASSWORD).status_code == 303
    assert server_id not in api.get("/dashboard").text


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("../app.py", 404),
        ("..%2Fapp.py", 404),
        ("dashboard.py", 404),
        ("x" * 300, 404),
        ("base.html", 404),
        ("%00", 400),  # the input gate refuses control characters in any path first
    ],
)
def test_only_the_dashboard_files_are_served(api: Api, name: str, status: int) -> None:
    assert api.get(f"/dashboard/static/{name}").status_code == status
    assert api.get("/dashboard/static/dashboard.css").status_code == 200


def test_hostile_logins_are_refused_not_crashed(api: Api) -> None:
    for form, status, said in (
        ({"username": "x" * 10_000, "password": "p"}, 400, "username"),
        ({"username": "admin"}, 400, "password"),
        ({"username": "<script>", "password": "p", "project": "<b>"}, 401, "Log in failed"),
        ({"username": "admin", "password": ADMIN_PASSWORD, "project": "nope"}, 401, "failed"),
    ):
        resp = api.post("/dashboard/login", data=form)
        assert resp.status_code == status and said in resp.text, (form, resp.text[:300])
        assert "<script>" not in resp.text  # escaped when shown back


def test_recent_no_valid_host_reasons_are_listed(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    net7 = sriov_network(api, tokens.admin, physnet="physnet7", vlan=700)
    p = create_port(api, tokens.demo, net7["id"], name="p7", **{"binding:vnic_type": "direct"})
    server_id = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    assert log_in(api, "admin", ADMIN_PASSWORD).status_code == 303
    page = api.get("/dashboard").text
    faults = page[page.index('id="faults"') :]
    assert server_id in faults and "no host has physical network physnet7" in faults
