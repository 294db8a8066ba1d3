"""The authorization matrix: every route of the OpenAPI document, with real ids
of one member's resources, called as the admin, that member, a member of
another project, no token, an expired token, a revoked token and the agent
credential of another host.

Two kinds of assertion: rules that hold whatever the route (no credential
but a valid token gets past a non-public route; the admin is never refused;
another project never reads or changes the member's resources), and today's
answer of every cell, kept in ``authz_matrix.txt`` so any change to who may
do what shows up in review. Regenerate it with PCIFLEET_UPDATE_AUTHZ=1 after
a deliberate change.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pcifleet.api.security import hash_token
from pcifleet.store.cloud import Token
from tests.api.agent import FakeAgent
from tests.api.conftest import DEMO_PASSWORD, Tokens
from tests.api.helpers import (
    COMPUTE,
    Api,
    create_network,
    create_port,
    create_subnet,
    password_auth,
)
from tests.api.test_servers import MV, boot, boot_env

GOLDEN = Path(__file__).with_name("authz_matrix.txt")
# least privileged first, so a caller that may delete does so after the others asked
CALLERS = ("none", "expired", "revoked", "agent", "other", "member", "admin")
UNAUTHENTICATED = ("none", "expired", "revoked", "agent")
# answered to anyone: version documents and the login itself
PUBLIC = {
    ("GET", "/"), ("GET", "/v3"), ("GET", "/networking"), ("GET", "/image"),
    ("GET", "/compute"), ("GET", "/compute/v2/"), ("GET", "/compute/v2"),
    ("GET", "/compute/v2.1"), ("GET", "/networking/v2.0"), ("POST", "/v3/auth/tokens"),
    ("GET", "/pcifleet/v1"),
}  # fmt: skip
# refused to the admin too: the matrix names the built-in role "member"
ADMIN_REFUSED = {
    ("DELETE", "/v3/roles/{role_id}"),
    ("DELETE", "/v3/domains/{domain_id}"),  # the Default domain, which nobody may delete
}
# path ids that name the member's own (private) resources
PRIVATE = ("{server_id}", "{port_id}", "{network_id}", "{subnet_id}", "{image_id}")
# deletes last, children before parents, so each finds what it names; role
# assignments and users after everything the member's token still needs
DELETE_ORDER = (
    "auth/tokens", "os-interface", "os-extra_specs", "os-keypairs", "servers/", "ports/",
    "subnets/", "networks/", "images/", "flavors/", "/roles/", "users/", "projects/",
)  # fmt: skip
# Bodies are {} (or an empty patch): a write's body is checked before its
# policy, so for writes the matrix shows 400s where a valid body would meet the
# policy; the reads and deletes show who may reach what.


def world(api: Api, tokens: Tokens, engine: Engine) -> dict[str, Any]:
    """The member's server, port, private network and image; two hosts."""
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    other_host = FakeAgent(api, tokens.admin, "compute2")
    other_host.report()
    resp = boot(api, tokens.demo, env, [{"uuid": env["net"]["id"]}])
    assert resp.status_code == 202, resp.text
    server = resp.json()["server"]["id"]
    agent.run_all()
    net = create_network(api, tokens.demo, name="private")
    subnet = create_subnet(api, tokens.demo, net["id"], "10.77.0.0/24")
    port = create_port(api, tokens.demo, net["id"])
    image = api.post(
        "/image/v2/images",
        token=tokens.demo,
        json={"name": "mine", "disk_format": "raw", "container_format": "bare"},
    ).json()["id"]
    admin = {"X-Auth-Token": tokens.admin}
    actions = api.get(f"{COMPUTE}/servers/{server}/os-instance-actions", headers={**admin, **MV})
    hypervisors = api.get(f"{COMPUTE}/os-hypervisors", headers=admin).json()["hypervisors"]
    devices = api.get(f"{COMPUTE}/os-pci", headers=admin).json()["pci_devices"]
    services = api.get(f"{COMPUTE}/os-services", headers=admin).json()["services"]
    demo_user = api.get("/v3/users?name=demo", headers=admin).json()["users"][0]["id"]
    demo_project = api.get("/v3/projects?name=demo", headers=admin).json()["projects"][0]["id"]
    group = api.post("/v3/groups", headers=admin, json={"group": {"name": "team"}}).json()
    # the member's keypair, named as the routes' {name} parameter is filled
    keypair = {"keypair": {"name": "image"}}
    assert api.post(f"{COMPUTE}/os-keypairs", token=tokens.demo, json=keypair).status_code == 200
    ids = {
        "server_id": server,
        "port_id": port["id"],
        "network_id": net["id"],
        "subnet_id": subnet["id"],
        "image_id": image,
        "flavor_id": env["flavor"],
        "key": "hw:cpu_policy",
        "request_id": actions.json()["instanceActions"][0]["request_id"],
        "migration_id": "1",
        "migration_uuid": "00000000-0000-4000-8000-0000000000cc",
        "hypervisor_id": hypervisors[0]["id"],
        "pattern": "compute1",
        "device_id": str(devices[0]["id"]),
        "service_id": services[0]["id"],
        "host": "compute1",
        "task_id": "1",
        "user_id": demo_user,
        "project_id": demo_project,
        "role_id": "member",
        "domain_id": "default",
        "group_id": group["group"]["id"],
        "prior_role_id": "member",
        "implied_role_id": "reader",
        "alias": "binding",
        "name": "image",
        "network_label": "physnet1-100",
    }
    return {"ids": ids, "agent_headers": other_host.headers}


def callers(api: Api, tokens: Tokens, engine: Engine, agent: dict[str, str]) -> dict[str, Any]:
    def login() -> str:
        resp = api.post("/v3/auth/tokens", json=password_auth("demo", DEMO_PASSWORD, "demo"))
        return str(resp.headers["X-Subject-Token"])

    expired, revoked = login(), login()
    with Session(engine) as session, session.begin():
        row = session.get(Token, hash_token(expired))
        assert row is not None
        row.expires_at = row.issued_at - timedelta(seconds=1)
    headers = {"X-Subject-Token": revoked}
    assert api.delete("/v3/auth/tokens", token=revoked, headers=headers).status_code == 204

    def token(value: str) -> dict[str, str]:
        return {"X-Auth-Token": value}

    return {
        "none": {},
        "expired": token(expired),
        "revoked": token(revoked),
        "agent": agent,
        "other": token(tokens.alice),
        "member": token(tokens.demo),
        "admin": token(tokens.admin),
    }


def path_id(ids: dict[str, Any], path: str, name: str) -> Any:
    """The id a path parameter takes; a grant's target and actor depend on the
    kind the path names (``/v3/domains/{target_id}/groups/{actor_id}/...``)."""
    if name == "target_id":
        return ids["domain_id"] if path.startswith("/v3/domains/") else ids["project_id"]
    if name == "actor_id":
        return ids["group_id"] if "/groups/{actor_id}" in path else ids["user_id"]
    return ids[name]


def routes(app: FastAPI) -> list[tuple[str, str]]:
    found = [
        (method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item
    ]

    def order(route: tuple[str, str]) -> tuple[int, int, str]:
        method, path = route
        if method != "DELETE":
            return (0, 0, path)
        rank = next((i for i, part in enumerate(DELETE_ORDER) if part in path), len(DELETE_ORDER))
        return (1, rank, path)

    return sorted(found, key=order)


def test_authorization_matrix(api: Api, app: FastAPI, tokens: Tokens, engine: Engine) -> None:
    made = world(api, tokens, engine)
    who = callers(api, tokens, engine, made["agent_headers"])
    ids = made["ids"]
    rows = []
    broken = []
    for method, path in routes(app):
        url = re.sub(r"\{([^}]+)\}", lambda m, p=path: str(path_id(ids, p, m.group(1))), path)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        cells = {}
        for caller in CALLERS:
            headers = {**who[caller], **MV}
            if method == "PATCH" and path.startswith("/image/"):
                headers["Content-Type"] = "application/openstack-images-v2.1-json-patch"
                body = []  # type: ignore[assignment]
            resp = api.request(method, url, headers=headers, json=body)
            cells[caller] = resp.status_code
        rows.append(f"{method:6} {path:70} " + " ".join(f"{c}={cells[c]}" for c in CALLERS))
        broken += rule_breaks(method, path, cells)
    assert broken == [], "\n".join(broken)
    text = "\n".join(rows) + "\n"
    if os.environ.get("PCIFLEET_UPDATE_AUTHZ"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "who may do what changed; see the module docstring"


def rule_breaks(method: str, path: str, cells: dict[str, int]) -> list[str]:
    out = []
    where = f"{method} {path}"
    if (method, path) not in PUBLIC:
        for caller in UNAUTHENTICATED:
            if cells[caller] != 401:
                out.append(f"{where}: {caller} got {cells[caller]}, not 401")
    if cells["admin"] in (401, 403) and (method, path) not in ADMIN_REFUSED:
        out.append(f"{where}: the admin got {cells['admin']}")
    if any(p in path for p in PRIVATE) and cells["other"] < 400:
        out.append(f"{where}: another project got {cells['other']} on the member's resource")
    if path.startswith("/pcifleet/v1/") and cells["member"] < 400 and method != "GET":
        out.append(f"{where}: a member changed pcifleet's own state ({cells['member']})")
    return out
