"""Identity administration stories: an admin makes a project, a user and a role,
assigns it, the user logs in with it; system roles and system-scoped, unscoped and
rescoped tokens; what a member may and may not do."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import DEMO_PASSWORD, Tokens, issue
from tests.api.helpers import Api, password_auth


def unscoped_auth(user: str, password: str) -> dict[str, Any]:
    body = password_auth(user, password, "-")
    del body["auth"]["scope"]
    return body


def make_project(api: Api, token: str, name: str, **fields: Any) -> dict[str, Any]:
    resp = api.post("/v3/projects", token=token, json={"project": {"name": name, **fields}})
    assert resp.status_code == 201, resp.text
    project: dict[str, Any] = resp.json()["project"]
    return project


def make_user(api: Api, token: str, name: str, **fields: Any) -> dict[str, Any]:
    resp = api.post("/v3/users", token=token, json={"user": {"name": name, **fields}})
    assert resp.status_code == 201, resp.text
    user: dict[str, Any] = resp.json()["user"]
    return user


def test_admin_makes_a_tenant_a_user_logs_into_it(api: Api, tokens: Tokens) -> None:
    project = make_project(api, tokens.admin, "lab", description="a lab", tags=["x"])
    assert project["domain_id"] == "default" and project["tags"] == ["x"]
    user = make_user(
        api, tokens.admin, "bob", password="bob-pw", email="bob@example.com", project_id="p"
    )
    # Keystone keeps attributes it does not model and shows them back
    assert user["email"] == "bob@example.com" and user["project_id"] == "p"
    assert "password" not in user
    roles = api.get("/v3/roles?name=member", token=tokens.admin).json()["roles"]
    member = roles[0]["id"]
    grant = f"/v3/projects/{project['id']}/users/{user['id']}/roles/{member}"
    assert (
        api.post("/v3/auth/tokens", json=password_auth("bob", "bob-pw", "lab")).status_code == 401
    )
    assert api.put(grant, token=tokens.admin).status_code == 204
    assert api.put(grant, token=tokens.admin).status_code == 204  # idempotent
    assert api.request("HEAD", grant, token=tokens.admin).status_code == 204
    resp = api.post("/v3/auth/tokens", json=password_auth("bob", "bob-pw", "lab"))
    assert resp.status_code == 201
    bob = resp.headers["X-Subject-Token"]
    assert {r["name"] for r in resp.json()["token"]["roles"]} == {"member", "reader"}
    # the new tenant is a tenant: it makes its own network
    net = api.post("/networking/v2.0/networks", token=bob, json={"network": {"name": "n"}})
    assert net.status_code == 201 and net.json()["network"]["project_id"] == project["id"]
    listed = api.get(
        f"/v3/role_assignments?user.id={user['id']}&include_names=1", token=tokens.admin
    ).json()["role_assignments"]
    assert [(a["role"]["name"], a["scope"]["project"]["name"]) for a in listed] == [
        ("member", "lab")
    ]
    mine = api.get(f"/v3/users/{user['id']}/projects", token=bob).json()["projects"]
    assert [p["name"] for p in mine] == ["lab"]
    # revoking the role ends the project's tokens of that user at once
    assert api.delete(grant, token=tokens.admin).status_code == 204
    assert api.get("/networking/v2.0/networks", token=bob).status_code == 401
    assert api.delete(grant, token=tokens.admin).status_code == 404


def test_duplicates_are_409_and_bad_fields_400_naming_them(api: Api, tokens: Tokens) -> None:
    make_project(api, tokens.admin, "dup")
    resp = api.post("/v3/projects", token=tokens.admin, json={"project": {"name": "dup"}})
    assert resp.status_code == 409 and "Duplicate" in resp.json()["error"]["message"]
    for body, field in (
        ({"name": ""}, "project.name"),
        ({"name": "x" * 65}, "project.name"),
        ({"name": "ok", "enabled": "yes"}, "project.enabled"),
        ({"name": "ok", "bogus": 1}, "project.bogus"),
        ({"name": "ok", "parent_id": "abc"}, "parent_id"),
    ):
        resp = api.post("/v3/projects", token=tokens.admin, json={"project": body})
        assert resp.status_code == 400, body
        assert field in resp.json()["error"]["message"], resp.text
    make_user(api, tokens.admin, "carol", password="pw")
    resp = api.post("/v3/users", token=tokens.admin, json={"user": {"name": "carol"}})
    assert resp.status_code == 409
    resp = api.post("/v3/users", token=tokens.admin, json={"user": {"name": "d", "domain_id": "x"}})
    assert resp.status_code == 404  # as Keystone: no such domain
    assert api.delete("/v3/projects/nope", token=tokens.admin).status_code == 404


def test_members_may_not_administer(api: Api, tokens: Tokens) -> None:
    for method, path, body in (
        ("POST", "/v3/projects", {"project": {"name": "mine"}}),
        ("POST", "/v3/users", {"user": {"name": "eve"}}),
        ("POST", "/v3/roles", {"role": {"name": "boss"}}),
        ("GET", "/v3/projects", None),
        ("GET", "/v3/roles", None),
        ("GET", "/v3/role_assignments", None),
    ):
        resp = api.request(method, path, token=tokens.demo, json=body)
        assert resp.status_code == 403, (method, path)


def test_user_update_disable_password_change_and_delete(api: Api, tokens: Tokens) -> None:
    project = make_project(api, tokens.admin, "upd")
    user = make_user(api, tokens.admin, "dave", password="old-pw", default_project_id=project["id"])
    api.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/member", token=tokens.admin)
    dave = api.post("/v3/auth/tokens", json=unscoped_auth("dave", "old-pw"))
    # no scope asked: the default project, where dave has a role
    assert dave.json()["token"]["project"]["name"] == "upd"
    token = dave.headers["X-Subject-Token"]
    resp = api.patch(
        f"/v3/users/{user['id']}",
        token=tokens.admin,
        json={"user": {"id": user["id"], "description": "d", "email": "e@x"}},
    )
    assert resp.status_code == 200 and resp.json()["user"]["email"] == "e@x"
    wrong = {"user": {"password": "new-pw", "original_password": "nope"}}
    assert api.post(f"/v3/users/{user['id']}/password", token=token, json=wrong).status_code == 401
    right = {"user": {"password": "new-pw", "original_password": "old-pw"}}
    assert api.post(f"/v3/users/{user['id']}/password", token=token, json=right).status_code == 204
    assert api.get("/v3/auth/projects", token=token).status_code == 401  # tokens ended
    assert api.post("/v3/auth/tokens", json=unscoped_auth("dave", "new-pw")).status_code == 201
    off = api.patch(
        f"/v3/users/{user['id']}", token=tokens.admin, json={"user": {"enabled": False}}
    )
    assert off.status_code == 200
    assert api.post("/v3/auth/tokens", json=unscoped_auth("dave", "new-pw")).status_code == 401
    assert api.delete(f"/v3/users/{user['id']}", token=tokens.admin).status_code == 204
    assert api.get(f"/v3/users/{user['id']}", token=tokens.admin).status_code == 404


def test_roles_made_renamed_and_deleted_built_ins_kept(api: Api, tokens: Tokens) -> None:
    resp = api.post("/v3/roles", token=tokens.admin, json={"role": {"name": "auditor"}})
    assert resp.status_code == 201
    role = resp.json()["role"]
    renamed = api.patch(
        f"/v3/roles/{role['id']}", token=tokens.admin, json={"role": {"name": "inspector"}}
    )
    assert renamed.json()["role"]["name"] == "inspector"
    assert api.get(f"/v3/roles/{role['id']}", token=tokens.admin).json()["role"]["name"] == (
        "inspector"
    )
    assert api.delete(f"/v3/roles/{role['id']}", token=tokens.admin).status_code == 204
    assert api.delete("/v3/roles/admin", token=tokens.admin).status_code == 403
    names = {r["name"] for r in api.get("/v3/roles", token=tokens.admin).json()["roles"]}
    assert {"admin", "member", "reader"} <= names


def test_unscoped_system_and_rescoped_tokens(api: Api, tokens: Tokens) -> None:
    user = make_user(api, tokens.admin, "frank", password="pw")
    project = make_project(api, tokens.admin, "frank-p")
    # no default project: an unscoped token, good for Identity only
    resp = api.post("/v3/auth/tokens", json=unscoped_auth("frank", "pw"))
    assert resp.status_code == 201
    body = resp.json()["token"]
    assert "project" not in body and "roles" not in body and "catalog" not in body
    unscoped = resp.headers["X-Subject-Token"]
    assert api.get("/v3/auth/projects", token=unscoped).json()["projects"] == []
    assert api.get("/compute/v2.1/servers", token=unscoped).status_code == 401
    # rescoped to a project: Keystone's methods and the first token's expiry
    api.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/reader", token=tokens.admin)
    rescope = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": {"project": {"id": project["id"]}},
        }
    }
    resp = api.post("/v3/auth/tokens", json=rescope)
    assert resp.status_code == 201, resp.text
    scoped = resp.json()["token"]
    assert scoped["methods"] == ["password", "token"]
    assert scoped["expires_at"] == body["expires_at"]
    assert [r["name"] for r in scoped["roles"]] == ["reader"]
    # a system role gives a system-scoped token, which the services refuse
    grant = f"/v3/system/users/{user['id']}/roles/reader"
    assert api.put(grant, token=tokens.admin).status_code == 204
    listed = api.get(f"/v3/system/users/{user['id']}/roles", token=tokens.admin).json()
    assert [r["id"] for r in listed["roles"]] == ["reader"]
    system = {**unscoped_auth("frank", "pw")}
    system["auth"]["scope"] = {"system": {"all": True}}
    resp = api.post("/v3/auth/tokens", json=system)
    assert resp.status_code == 201 and resp.json()["token"]["system"] == {"all": True}
    assert (
        api.get("/networking/v2.0/networks", token=resp.headers["X-Subject-Token"]).status_code
        == 401
    )
    assert api.delete(grant, token=tokens.admin).status_code == 204
    assert api.post("/v3/auth/tokens", json=system).status_code == 401


def test_a_user_checks_and_revokes_its_own_other_tokens(api: Api, tokens: Tokens) -> None:
    # Keystone's token_subject rule: any token of the caller's own user
    other = issue(api, "demo", DEMO_PASSWORD, "demo")
    headers = {"X-Subject-Token": other}
    assert api.get("/v3/auth/tokens", token=tokens.demo, headers=headers).status_code == 200
    assert (
        api.request("HEAD", "/v3/auth/tokens", token=tokens.demo, headers=headers).status_code
        == 200
    )
    assert api.delete("/v3/auth/tokens", token=tokens.demo, headers=headers).status_code == 204
    assert api.get("/v3/auth/tokens", token=tokens.demo, headers=headers).status_code == 404
    # another user's token stays an admin's business
    alice = {"X-Subject-Token": tokens.alice}
    assert api.get("/v3/auth/tokens", token=tokens.demo, headers=alice).status_code == 403


def test_the_one_domain(api: Api, tokens: Tokens) -> None:
    domains = api.get("/v3/domains?name=Default", token=tokens.demo).json()["domains"]
    assert [d["id"] for d in domains] == ["default"]
    assert api.get("/v3/domains?name=Other", token=tokens.demo).json()["domains"] == []
    assert api.get("/v3/domains/nope", token=tokens.demo).status_code == 404
