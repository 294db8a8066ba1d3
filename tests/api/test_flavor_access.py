"""os-flavor-access: a private flavor shared with a project is that project's to
list, show and boot; only admins grant, revoke and read the grants (Nova)."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Tokens
from tests.api.helpers import Api, compute_error
from tests.api.test_servers import boot, boot_env

COMPUTE = "/compute/v2.1"


def project_id(api: Api, tokens: Tokens, name: str) -> str:
    projects = api.get(f"/v3/projects?name={name}", token=tokens.admin).json()["projects"]
    (found,) = projects
    return str(found["id"])


def private_flavor(api: Api, tokens: Tokens, name: str = "secret") -> str:
    body = {
        "flavor": {
            "name": name,
            "ram": 64,
            "vcpus": 1,
            "disk": 0,
            "os-flavor-access:is_public": False,
        }
    }
    resp = api.post(f"{COMPUTE}/flavors", token=tokens.admin, json=body)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["flavor"]["id"])


def action(api: Api, token: str, flavor: str, body: Any) -> Any:
    return api.post(f"{COMPUTE}/flavors/{flavor}/action", token=token, json=body)


def listed(api: Api, token: str) -> set[str]:
    flavors = api.get(f"{COMPUTE}/flavors/detail", token=token).json()["flavors"]
    return {f["id"] for f in flavors}


def test_grant_shows_the_flavor_to_that_project_only_and_revoke_hides_it(
    api: Api, tokens: Tokens
) -> None:
    flavor = private_flavor(api, tokens)
    demo = project_id(api, tokens, "demo")
    access = f"{COMPUTE}/flavors/{flavor}/os-flavor-access"
    assert api.get(access, token=tokens.admin).json() == {"flavor_access": []}
    assert flavor not in listed(api, tokens.demo)

    resp = action(api, tokens.admin, flavor, {"addTenantAccess": {"tenant": demo}})
    assert resp.status_code == 200, resp.text
    grant = {"flavor_id": flavor, "tenant_id": demo}
    assert resp.json() == {"flavor_access": [grant]}
    assert api.get(access, token=tokens.admin).json() == {"flavor_access": [grant]}
    assert flavor in listed(api, tokens.demo)
    assert api.get(f"{COMPUTE}/flavors/{flavor}", token=tokens.demo).status_code == 200
    assert flavor not in listed(api, tokens.alice)  # another project still does not see it
    assert api.get(f"{COMPUTE}/flavors/{flavor}", token=tokens.alice).status_code == 404

    resp = action(api, tokens.admin, flavor, {"removeTenantAccess": {"tenant": demo}})
    assert resp.status_code == 200 and resp.json() == {"flavor_access": []}
    assert flavor not in listed(api, tokens.demo)


def test_grant_errors_are_novas(api: Api, tokens: Tokens) -> None:
    flavor = private_flavor(api, tokens)
    demo = project_id(api, tokens, "demo")
    add = {"addTenantAccess": {"tenant": demo}}
    assert action(api, tokens.admin, flavor, add).status_code == 200
    msg = compute_error(action(api, tokens.admin, flavor, add), 409, "conflictingRequest")
    assert "already exists" in msg
    # only admins grant and revoke
    compute_error(action(api, tokens.demo, flavor, add), 403, "forbidden")
    remove = {"removeTenantAccess": {"tenant": demo}}
    compute_error(action(api, tokens.demo, flavor, remove), 403, "forbidden")
    other = project_id(api, tokens, "other")
    msg = compute_error(
        action(api, tokens.admin, flavor, {"removeTenantAccess": {"tenant": other}}),
        404,
        "itemNotFound",
    )
    assert "Flavor access not found" in msg
    msg = compute_error(
        action(api, tokens.admin, flavor, {"addTenantAccess": {"tenant": "no-such-project"}}),
        400,
        "badRequest",
    )
    assert "no-such-project" in msg
    public = api.post(
        f"{COMPUTE}/flavors",
        token=tokens.admin,
        json={"flavor": {"name": "pub", "ram": 64, "vcpus": 1, "disk": 0}},
    ).json()["flavor"]["id"]
    msg = compute_error(action(api, tokens.admin, public, add), 409, "conflictingRequest")
    assert "public flavor" in msg
    resp = api.get(f"{COMPUTE}/flavors/{public}/os-flavor-access", token=tokens.admin)
    compute_error(resp, 404, "itemNotFound")
    compute_error(action(api, tokens.admin, "no-such", add), 404, "itemNotFound")


def test_hostile_action_bodies_are_400_naming_the_field(api: Api, tokens: Tokens) -> None:
    flavor = private_flavor(api, tokens)
    demo = project_id(api, tokens, "demo")
    for body, field in (
        ({}, "addTenantAccess"),
        ({"addTenantAccess": {"tenant": demo}, "removeTenantAccess": {"tenant": demo}}, "one"),
        ({"addTenantAccess": {}}, "tenant"),
        ({"addTenantAccess": {"tenant": ""}}, "tenant"),
        ({"addTenantAccess": {"tenant": "x" * 256}}, "tenant"),
        ({"addTenantAccess": {"tenant": {"nested": [1, 2]}}}, "tenant"),
        ({"addTenantAccess": {"tenant": demo, "extra": 1}}, "extra"),
        ({"deleteEverything": None}, "deleteEverything"),
        ([1, 2, 3], "body"),
        ("text", "body"),
    ):
        resp = action(api, tokens.admin, flavor, body)
        msg = compute_error(resp, 400, "badRequest")
        assert field in msg, (body, msg)
    assert api.get(f"{COMPUTE}/flavors/{flavor}/os-flavor-access", token=tokens.admin).json() == {
        "flavor_access": []
    }


def test_a_shared_flavor_goes_with_its_project(api: Api, tokens: Tokens) -> None:
    flavor = private_flavor(api, tokens)
    resp = api.post("/v3/projects", token=tokens.admin, json={"project": {"name": "short-lived"}})
    assert resp.status_code == 201, resp.text
    short = resp.json()["project"]["id"]
    resp = action(api, tokens.admin, flavor, {"addTenantAccess": {"tenant": short}})
    assert resp.status_code == 200
    assert api.delete(f"/v3/projects/{short}", token=tokens.admin).status_code == 204
    access = api.get(f"{COMPUTE}/flavors/{flavor}/os-flavor-access", token=tokens.admin).json()
    assert access == {"flavor_access": []}


def test_a_shared_flavor_boots_for_that_project_only(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    flavor = private_flavor(api, tokens, "gpu-only")
    demo = project_id(api, tokens, "demo")
    mine = dict(env, flavor=flavor)
    assert flavor in compute_error(boot(api, tokens.demo, mine, "none"), 400, "badRequest")
    assert (
        action(api, tokens.admin, flavor, {"addTenantAccess": {"tenant": demo}}).status_code == 200
    )
    resp = boot(api, tokens.demo, mine, "none")
    assert resp.status_code == 202, resp.text
    refused = boot(api, tokens.alice, mine, "none")
    assert flavor in compute_error(refused, 400, "badRequest")
