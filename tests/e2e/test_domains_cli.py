"""Domains, nested projects and groups through the real ``openstack`` CLI against
``pcifleet up``: an operator makes a second domain with a project tree, a user
and a group, gives the group a role, and the user logs in with it; then the
domain is disabled and deleted with everything in it."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import Cloud
from .helpers import OPENSTACK, OscRunner, osc_json, osc_ok, run_osc

pytestmark = pytest.mark.slow
PASSWORD = "domain-user-secret"  # a throw-away cloud's user


def as_user(cloud: Cloud, domain: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``openstack ARGS`` as user ``dana`` of ``domain`` (a fresh process, its own login)."""
    auth = [
        "--os-auth-url", cloud.url, "--os-identity-api-version", "3",
        "--os-username", "dana", "--os-password", PASSWORD,
        "--os-user-domain-name", domain, "--os-region-name", "RegionOne",
    ]  # fmt: skip
    return subprocess.run(
        [OPENSTACK, *auth, *args], env=cloud.env, capture_output=True, text=True, timeout=180
    )


def test_a_domain_its_project_tree_and_a_group_role(cli: OscRunner, cloud: Cloud) -> None:
    dom = osc_json(cli, "domain", "create", "--description", "a customer", "acme")
    assert dom["name"] == "acme" and dom["enabled"] is True
    parent = osc_json(cli, "project", "create", "--domain", "acme", "acme-root")
    child = osc_json(
        cli, "project", "create", "--domain", "acme", "--parent", "acme-root", "acme-lab"
    )
    assert parent["domain_id"] == dom["id"] and parent["parent_id"] == dom["id"]
    assert child["parent_id"] == parent["id"]
    user = osc_json(cli, "user", "create", "--domain", "acme", "--password", PASSWORD, "dana")
    assert user["domain_id"] == dom["id"]
    group = osc_json(cli, "group", "create", "--domain", "acme", "lab-team")
    osc_ok(cli, "group", "add", "user", "--group-domain", "acme", "--user-domain", "acme",
           "lab-team", "dana")  # fmt: skip
    contains = run_osc(cli, "group", "contains", "user", "--group-domain", "acme",
                       "--user-domain", "acme", "lab-team", "dana")  # fmt: skip
    assert contains.returncode == 0 and contains.stdout.strip() == "dana in group lab-team"
    osc_ok(cli, "role", "add", "--group", group["id"], "--project", child["id"], "member")

    # dana has no role of her own: the group's makes her a member of acme-lab
    token = as_user(cloud, "acme", "--os-project-id", child["id"], "token", "issue",
                    "-f", "json")  # fmt: skip
    assert token.returncode == 0, token.stderr
    assert child["id"] in token.stdout
    effective = osc_json(
        cli, "role", "assignment", "list", "--effective", "--user", user["id"], "--names"
    )
    assert {(a["Role"], a["Project"]) for a in effective} >= {("member", "acme-lab@acme")}
    osc_ok(cli, "role", "add", "--user", user["id"], "--domain", "acme", "reader")
    scoped = as_user(cloud, "acme", "--os-domain-name", "acme", "token", "issue", "-f", "json")
    assert scoped.returncode == 0, scoped.stderr
    assert dom["id"] in scoped.stdout

    osc_ok(cli, "group", "remove", "user", "--group-domain", "acme", "--user-domain", "acme",
           "lab-team", "dana")  # fmt: skip
    gone = as_user(cloud, "acme", "--os-project-id", child["id"], "token", "issue")
    assert gone.returncode != 0
    refused = run_osc(cli, "domain", "delete", "acme")
    assert refused.returncode != 0  # an enabled domain stays
    osc_ok(cli, "domain", "set", "--disable", "acme")
    assert as_user(cloud, "acme", "--os-domain-name", "acme", "token", "issue").returncode != 0
    osc_ok(cli, "domain", "delete", "acme")
    assert "acme" not in {d["Name"] for d in osc_json(cli, "domain", "list")}
    left = {p["ID"] for p in osc_json(cli, "project", "list")}
    assert parent["id"] not in left and child["id"] not in left
