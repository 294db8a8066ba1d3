"""Identity stories beyond the one domain: domains and what lives in them,
nested projects, groups and their role assignments, domain-scoped tokens,
role inference rules and domain-specific roles, as Keystone's v3 API has them."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Tokens
from tests.api.helpers import Api


def made(resp: Any, key: str) -> dict[str, Any]:
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()[key]
    return body


def domain(api: Api, token: str, name: str, **fields: Any) -> dict[str, Any]:
    return made(
        api.post("/v3/domains", token=token, json={"domain": {"name": name, **fields}}), "domain"
    )


def project(api: Api, token: str, name: str, **fields: Any) -> dict[str, Any]:
    resp = api.post("/v3/projects", token=token, json={"project": {"name": name, **fields}})
    return made(resp, "project")


def user(api: Api, token: str, name: str, **fields: Any) -> dict[str, Any]:
    resp = api.post("/v3/users", token=token, json={"user": {"name": name, **fields}})
    return made(resp, "user")


def group(api: Api, token: str, name: str, **fields: Any) -> dict[str, Any]:
    resp = api.post("/v3/groups", token=token, json={"group": {"name": name, **fields}})
    return made(resp, "group")


def role(api: Api, token: str, name: str, **fields: Any) -> dict[str, Any]:
    return made(api.post("/v3/roles", token=token, json={"role": {"name": name, **fields}}), "role")


def login(api: Api, user_ref: dict[str, Any], password: str, scope: Any = None) -> Any:
    body: dict[str, Any] = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {**user_ref, "password": password}},
            }
        }
    }
    if scope is not None:
        body["auth"]["scope"] = scope
    return api.post("/v3/auth/tokens?nocatalog", json=body)


def test_a_domain_holds_its_own_projects_and_users_and_goes_only_disabled(
    api: Api, tokens: Tokens
) -> None:
    acme = domain(api, tokens.admin, "acme", description="a customer")
    assert acme["enabled"] is True and acme["description"] == "a customer"
    dup = api.post("/v3/domains", token=tokens.admin, json={"domain": {"name": "acme"}})
    assert dup.status_code == 409
    ops = project(api, tokens.admin, "ops", domain_id=acme["id"])
    assert ops["domain_id"] == acme["id"] and ops["parent_id"] == acme["id"]
    # names are unique per domain: a second "ops" and a second "demo" user are fine
    project(api, tokens.admin, "ops")
    demo = user(api, tokens.admin, "demo", password="acme-pw", domain_id=acme["id"])
    assert demo["domain_id"] == acme["id"]
    again = api.post(
        "/v3/users", token=tokens.admin, json={"user": {"name": "demo", "domain_id": acme["id"]}}
    )
    assert again.status_code == 409
    api.put(f"/v3/projects/{ops['id']}/users/{demo['id']}/roles/member", token=tokens.admin)
    by_name = {"name": "demo", "domain": {"name": "acme"}}
    resp = login(
        api, by_name, "acme-pw", {"project": {"name": "ops", "domain": {"id": acme["id"]}}}
    )
    assert resp.status_code == 201, resp.text
    token = resp.json()["token"]
    assert token["user"]["domain"] == {"id": acme["id"], "name": "acme"}
    assert token["project"]["id"] == ops["id"]
    assert token["project"]["domain"] == {"id": acme["id"], "name": "acme"}
    demo_token = resp.headers["X-Subject-Token"]
    # the Default domain's demo is another user
    assert login(api, {"name": "demo", "domain": {"id": "default"}}, "acme-pw").status_code == 401

    listed = api.get(f"/v3/projects?domain_id={acme['id']}", token=tokens.admin).json()
    assert [p["name"] for p in listed["projects"]] == ["ops"]
    assert api.delete(f"/v3/domains/{acme['id']}", token=tokens.admin).status_code == 403
    off = api.patch(
        f"/v3/domains/{acme['id']}", token=tokens.admin, json={"domain": {"enabled": False}}
    )
    assert off.status_code == 200 and off.json()["domain"]["enabled"] is False
    # a disabled domain's users and projects are out of reach
    assert api.get("/networking/v2.0/networks", token=demo_token).status_code == 401
    assert login(api, by_name, "acme-pw").status_code == 401
    assert api.delete(f"/v3/domains/{acme['id']}", token=tokens.admin).status_code == 204
    assert api.get(f"/v3/projects/{ops['id']}", token=tokens.admin).status_code == 404
    assert api.get(f"/v3/users/{demo['id']}", token=tokens.admin).status_code == 404
    assert api.get(f"/v3/domains/{acme['id']}", token=tokens.admin).status_code == 404


def test_default_stays_and_members_see_only_their_domain(api: Api, tokens: Tokens) -> None:
    assert api.delete("/v3/domains/default", token=tokens.admin).status_code == 403
    off = {"domain": {"enabled": False}}
    assert api.patch("/v3/domains/default", token=tokens.admin, json=off).status_code == 403
    domain(api, tokens.admin, "hidden")
    seen = api.get("/v3/domains", token=tokens.demo).json()["domains"]
    assert [d["id"] for d in seen] == ["default"]
    everything = api.get("/v3/domains", token=tokens.admin).json()["domains"]
    assert {d["name"] for d in everything} >= {"Default", "hidden"}
    assert (
        api.post("/v3/domains", token=tokens.demo, json={"domain": {"name": "x"}}).status_code
        == 403
    )


def test_nested_projects_and_projects_acting_as_domains(api: Api, tokens: Tokens) -> None:
    root = project(api, tokens.admin, "root")
    child = project(api, tokens.admin, "child", parent_id=root["id"])
    assert child["parent_id"] == root["id"] and child["domain_id"] == "default"
    under = api.get(f"/v3/projects?parent_id={root['id']}", token=tokens.admin).json()
    assert [p["id"] for p in under["projects"]] == [child["id"]]
    # a parent with children stays; its leaves go first
    assert api.delete(f"/v3/projects/{root['id']}", token=tokens.admin).status_code == 403
    other = domain(api, tokens.admin, "elsewhere")
    wrong = api.post(
        "/v3/projects",
        token=tokens.admin,
        json={"project": {"name": "x", "parent_id": root["id"], "domain_id": other["id"]}},
    )
    assert wrong.status_code == 400 and "domain_id" in wrong.json()["error"]["message"]
    moved = api.patch(
        f"/v3/projects/{child['id']}", token=tokens.admin, json={"project": {"parent_id": None}}
    )
    assert moved.status_code == 400 and "parent_id" in moved.json()["error"]["message"]
    assert api.delete(f"/v3/projects/{child['id']}", token=tokens.admin).status_code == 204
    assert api.delete(f"/v3/projects/{root['id']}", token=tokens.admin).status_code == 204

    as_domain = project(api, tokens.admin, "dom-project", is_domain=True)
    assert as_domain["is_domain"] is True and as_domain["domain_id"] is None
    domains = api.get("/v3/projects?is_domain=true", token=tokens.admin).json()["projects"]
    assert as_domain["id"] in {p["id"] for p in domains}
    plain = api.get("/v3/projects", token=tokens.admin).json()["projects"]
    assert as_domain["id"] not in {p["id"] for p in plain}
    listed = api.get("/v3/domains", token=tokens.admin).json()["domains"]
    assert as_domain["id"] in {d["id"] for d in listed}
    assert api.delete(f"/v3/projects/{as_domain['id']}", token=tokens.admin).status_code == 403
    off = {"project": {"enabled": False}}
    api.patch(f"/v3/projects/{as_domain['id']}", token=tokens.admin, json=off)
    assert api.delete(f"/v3/projects/{as_domain['id']}", token=tokens.admin).status_code == 204


def test_a_groups_role_counts_for_its_members(api: Api, tokens: Tokens) -> None:
    lab = project(api, tokens.admin, "lab")
    ann = user(api, tokens.admin, "ann", password="ann-pw")
    team = group(api, tokens.admin, "team", description="the team", email="t@example.com")
    assert team["domain_id"] == "default" and team["email"] == "t@example.com"
    assert (
        api.post("/v3/groups", token=tokens.admin, json={"group": {"name": "team"}}).status_code
        == 409
    )
    grant = f"/v3/projects/{lab['id']}/groups/{team['id']}/roles/member"
    assert api.put(grant, token=tokens.admin).status_code == 204
    assert api.request("HEAD", grant, token=tokens.admin).status_code == 204
    scope = {"project": {"id": lab["id"]}}
    ann_ref = {"id": ann["id"]}
    assert login(api, ann_ref, "ann-pw", scope).status_code == 401  # not a member yet

    member = f"/v3/groups/{team['id']}/users/{ann['id']}"
    assert api.request("HEAD", member, token=tokens.admin).status_code == 404
    assert api.put(member, token=tokens.admin).status_code == 204
    assert api.request("HEAD", member, token=tokens.admin).status_code == 204
    users = api.get(f"/v3/groups/{team['id']}/users", token=tokens.admin).json()["users"]
    assert [u["name"] for u in users] == ["ann"]
    resp = login(api, ann_ref, "ann-pw", scope)
    assert resp.status_code == 201
    assert {r["name"] for r in resp.json()["token"]["roles"]} == {"member", "reader"}
    ann_token = resp.headers["X-Subject-Token"]
    mine = api.get(f"/v3/users/{ann['id']}/groups", token=ann_token).json()["groups"]
    assert [g["id"] for g in mine] == [team["id"]]
    assert [p["id"] for p in api.get("/v3/auth/projects", token=ann_token).json()["projects"]] == [
        lab["id"]
    ]
    effective = api.get(
        f"/v3/role_assignments?user.id={ann['id']}&effective&include_names", token=tokens.admin
    ).json()["role_assignments"]
    assert sorted(a["role"]["name"] for a in effective) == ["member", "reader"]
    first = next(a for a in effective if a["role"]["name"] == "member")
    assert first["links"]["membership"] == member
    assert first["user"]["name"] == "ann" and first["scope"]["project"]["name"] == "lab"
    direct = api.get(f"/v3/role_assignments?group.id={team['id']}", token=tokens.admin).json()
    assert [a["group"]["id"] for a in direct["role_assignments"]] == [team["id"]]
    bad = api.get(f"/v3/role_assignments?group.id={team['id']}&effective", token=tokens.admin)
    assert bad.status_code == 400 and "group.id" in bad.json()["error"]["message"]

    # leaving the group takes the role away, from the token already issued too
    assert api.delete(member, token=tokens.admin).status_code == 204
    assert api.delete(member, token=tokens.admin).status_code == 404
    assert api.get("/networking/v2.0/networks", token=ann_token).status_code == 401
    assert api.delete(grant, token=tokens.admin).status_code == 204
    assert api.delete(f"/v3/groups/{team['id']}", token=tokens.admin).status_code == 204
    assert api.get(f"/v3/groups/{team['id']}", token=tokens.admin).status_code == 404


def test_domain_scoped_tokens_and_the_domains_a_user_may_scope_to(api: Api, tokens: Tokens) -> None:
    own, via_group, none = (domain(api, tokens.admin, n) for n in ("d-own", "d-group", "d-none"))
    bo = user(api, tokens.admin, "bo", password="bo-pw")
    crew = group(api, tokens.admin, "crew", domain_id=via_group["id"])
    api.put(f"/v3/groups/{crew['id']}/users/{bo['id']}", token=tokens.admin)
    api.put(f"/v3/domains/{own['id']}/users/{bo['id']}/roles/reader", token=tokens.admin)
    grant = f"/v3/domains/{via_group['id']}/groups/{crew['id']}/roles/member"
    assert api.put(grant, token=tokens.admin).status_code == 204
    listed = api.get(f"/v3/domains/{via_group['id']}/groups/{crew['id']}/roles", token=tokens.admin)
    assert [r["id"] for r in listed.json()["roles"]] == ["member"]

    ref = {"id": bo["id"]}
    unscoped = login(api, ref, "bo-pw").headers["X-Subject-Token"]
    scopes = api.get("/v3/auth/domains", token=unscoped).json()["domains"]
    assert {d["id"] for d in scopes} == {own["id"], via_group["id"]}
    resp = login(api, ref, "bo-pw", {"domain": {"name": "d-group"}})
    assert resp.status_code == 201, resp.text
    body = resp.json()["token"]
    assert body["domain"] == {"id": via_group["id"], "name": "d-group"}
    assert "project" not in body
    assert {r["name"] for r in body["roles"]} == {"member", "reader"}
    domain_token = resp.headers["X-Subject-Token"]
    shown = api.get(
        "/v3/auth/tokens", token=domain_token, headers={"X-Subject-Token": domain_token}
    )
    assert shown.json()["token"]["domain"]["id"] == via_group["id"]
    # the services want a project; no role on a domain, no token for it
    assert api.get("/compute/v2.1/servers", token=domain_token).status_code == 401
    assert login(api, ref, "bo-pw", {"domain": {"id": none["id"]}}).status_code == 401
    both = {"domain": {"id": own["id"]}, "project": {"id": "x"}}
    assert login(api, ref, "bo-pw", both).status_code == 400
    on_domain = api.get(
        f"/v3/role_assignments?scope.domain.id={own['id']}", token=tokens.admin
    ).json()["role_assignments"]
    assert [(a["user"]["id"], a["scope"]["domain"]["id"]) for a in on_domain] == [
        (bo["id"], own["id"])
    ]
    mixed = api.get(
        f"/v3/role_assignments?scope.domain.id={own['id']}&scope.project.id=x",
        token=tokens.admin,
    )
    assert mixed.status_code == 400


def test_role_inference_rules_and_domain_specific_roles(api: Api, tokens: Tokens) -> None:
    ops = project(api, tokens.admin, "infer")
    cy = user(api, tokens.admin, "cy", password="cy-pw")
    lead, worker = role(api, tokens.admin, "lead"), role(api, tokens.admin, "worker")
    rule = f"/v3/roles/{lead['id']}/implies/{worker['id']}"
    resp = api.put(rule, token=tokens.admin)
    assert resp.status_code == 201
    assert resp.json()["role_inference"]["implies"]["name"] == "worker"
    assert api.request("HEAD", rule, token=tokens.admin).status_code == 204
    implies = api.get(f"/v3/roles/{lead['id']}/implies", token=tokens.admin).json()
    assert [r["id"] for r in implies["role_inference"]["implies"]] == [worker["id"]]
    rules = api.get("/v3/role_inferences", token=tokens.admin).json()["role_inferences"]
    # the built-in chain is data too
    pairs = {(r["prior_role"]["id"], i["id"]) for r in rules for i in r["implies"]}
    assert {("admin", "member"), ("member", "reader"), (lead["id"], worker["id"])} <= pairs
    assert api.put(f"/v3/roles/{lead['id']}/implies/admin", token=tokens.admin).status_code == 403

    api.put(f"/v3/projects/{ops['id']}/users/{cy['id']}/roles/{lead['id']}", token=tokens.admin)
    resp = login(api, {"id": cy["id"]}, "cy-pw", {"project": {"id": ops["id"]}})
    assert {r["name"] for r in resp.json()["token"]["roles"]} == {"lead", "worker"}
    query = f"/v3/role_assignments?scope.project.id={ops['id']}&user.id={cy['id']}"
    effective = api.get(query + "&effective", token=tokens.admin).json()["role_assignments"]
    implied = next(a for a in effective if a["role"]["id"] == worker["id"])
    assert implied["links"]["prior_role"] == f"/v3/roles/{lead['id']}/implies/{worker['id']}"
    assert api.delete(rule, token=tokens.admin).status_code == 204
    assert api.get(rule, token=tokens.admin).status_code == 404
    assert len(api.get(query + "&effective", token=tokens.admin).json()["role_assignments"]) == 1

    # a domain-specific role only implies: it never shows in a token itself
    dom = domain(api, tokens.admin, "roles-dom")
    local = role(api, tokens.admin, "local", domain_id=dom["id"])
    assert local["domain_id"] == dom["id"]
    mine = api.get(f"/v3/roles?domain_id={dom['id']}", token=tokens.admin).json()["roles"]
    assert [r["id"] for r in mine] == [local["id"]]
    assert local["id"] not in {
        r["id"] for r in api.get("/v3/roles", token=tokens.admin).json()["roles"]
    }
    assert (
        api.put(f"/v3/roles/{worker['id']}/implies/{local['id']}", token=tokens.admin).status_code
        == 403
    )
    dom_project = project(api, tokens.admin, "in-dom", domain_id=dom["id"])
    assert (
        api.put(f"/v3/roles/{local['id']}/implies/{worker['id']}", token=tokens.admin).status_code
        == 201
    )
    api.put(
        f"/v3/projects/{dom_project['id']}/users/{cy['id']}/roles/{local['id']}", token=tokens.admin
    )
    resp = login(api, {"id": cy["id"]}, "cy-pw", {"project": {"id": dom_project["id"]}})
    assert [r["name"] for r in resp.json()["token"]["roles"]] == ["worker"]
    # given only inside its own domain
    elsewhere = f"/v3/projects/{ops['id']}/users/{cy['id']}/roles/{local['id']}"
    assert api.put(elsewhere, token=tokens.admin).status_code == 403
    assert api.delete(f"/v3/roles/{local['id']}", token=tokens.admin).status_code == 204


def test_bad_identity_input_is_a_400_naming_the_field(api: Api, tokens: Tokens) -> None:
    for path, body, field in (
        ("/v3/domains", {"domain": {"name": ""}}, "domain.name"),
        ("/v3/domains", {"domain": {"name": "d", "enabled": "yes"}}, "domain.enabled"),
        ("/v3/domains", {"domain": {"name": "d", "colour": 1}}, "domain.colour"),
        ("/v3/groups", {"group": {"name": "g", "domain_id": "nope"}}, "group.domain_id"),
        ("/v3/groups", {"group": {"name": ["g"]}}, "group.name"),
        ("/v3/roles", {"role": {"name": "r", "domain_id": "nope"}}, "role.domain_id"),
        ("/v3/projects", {"project": {"name": "p", "domain_id": "nope"}}, "domain_id"),
        (
            "/v3/projects",
            {"project": {"name": "p", "is_domain": True, "parent_id": "x"}},
            "parent_id",
        ),
    ):
        resp = api.post(path, token=tokens.admin, json=body)
        assert resp.status_code == 400, (path, body, resp.text)
        assert field in resp.json()["error"]["message"], resp.text
    for query in ("effective=maybe", "scope.system=some", "include_names=perhaps"):
        resp = api.get(f"/v3/role_assignments?{query}", token=tokens.admin)
        assert resp.status_code == 400, query
    grant = "/v3/domains/nope/users/nope/roles/member"
    assert api.put(grant, token=tokens.admin).status_code == 404
    assert api.get("/v3/groups", token=tokens.demo).status_code == 403
    names = {d["name"] for d in api.get("/v3/domains", token=tokens.admin).json()["domains"]}
    assert names == {"Default"}  # nothing above was made
