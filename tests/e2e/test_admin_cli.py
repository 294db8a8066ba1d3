"""An operator's administration through the real ``openstack`` CLI against
``pcifleet up``: a second tenant made with ``project``/``user``/``role``
commands and logged into, the hypervisors (``hypervisor show``, ``hypervisor
stats show``), and the server list's ``--deleted`` and ``--changes-since``.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .conftest import HOSTS, Cloud
from .helpers import COMPUTE, OPENSTACK, Api, OscRunner, osc_json, osc_ok, run_osc

pytestmark = pytest.mark.slow
PASSWORD = "tenant2-secret"  # a throw-away cloud's user


def as_user(cloud: Cloud, user: str, project: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``openstack ARGS`` with a user's own credentials (no clouds.yaml entry: a
    tenant made through the API logs in as any user would). A fresh process: the
    shared runner keeps the session of the credentials it was last given."""
    auth = [
        "--os-auth-url", cloud.url, "--os-identity-api-version", "3",
        "--os-username", user, "--os-password", PASSWORD, "--os-project-name", project,
        "--os-user-domain-name", "Default", "--os-project-domain-name", "Default",
        "--os-region-name", "RegionOne",
    ]  # fmt: skip
    return subprocess.run(
        [OPENSTACK, *auth, *args], env=cloud.env, capture_output=True, text=True, timeout=180
    )


def test_a_second_tenant_made_with_the_cli_logs_in_and_is_kept_apart(
    cli: OscRunner, cloud: Cloud
) -> None:
    project = osc_json(cli, "project", "create", "--description", "the second tenant", "tenant2")
    assert project["name"] == "tenant2" and project["enabled"] is True
    listed = {p["Name"]: p["ID"] for p in osc_json(cli, "project", "list")}
    assert listed["tenant2"] == project["id"]
    user = osc_json(cli, "user", "create", "--project", "tenant2", "--password", PASSWORD, "user2")
    assert user["name"] == "user2" and user["default_project_id"] == project["id"]
    osc_ok(cli, "role", "add", "--project", "tenant2", "--user", "user2", "member")
    assignments = osc_json(cli, "role", "assignment", "list", "--project", "tenant2", "--names")
    assert [(a["Role"], a["User"], a["Project"]) for a in assignments] == [
        ("member", "user2@Default", "tenant2@Default")
    ]
    by_id = osc_json(cli, "role", "assignment", "list", "--user", user["id"])
    assert [a["Project"] for a in by_id] == [project["id"]]

    token = as_user(cloud, "user2", "tenant2", "token", "issue", "-f", "json")
    assert token.returncode == 0, token.stderr
    assert '"project_id": "' + project["id"] in token.stdout
    made = as_user(cloud, "user2", "tenant2", "network", "create", "t2-net", "-f", "json")
    assert made.returncode == 0, made.stderr
    theirs = as_user(cloud, "user2", "tenant2", "server", "list", "-f", "json")
    assert theirs.returncode == 0 and theirs.stdout.strip() == "[]"
    # another project's member does not see the new tenant's network
    demo = run_osc(cloud.env, "network", "list", "-f", "value", "-c", "Name", who="pcifleet-demo")
    assert demo.returncode == 0 and "t2-net" not in demo.stdout.split()
    # a member may not administer identity
    refused = as_user(cloud, "user2", "tenant2", "project", "create", "tenant3")
    assert refused.returncode != 0
    wrong = as_user(cloud, "user2", "no-such-project", "token", "issue")
    assert wrong.returncode != 0

    osc_ok(cli, "network", "delete", "t2-net")
    osc_ok(cli, "user", "delete", "user2")
    osc_ok(cli, "project", "delete", "tenant2")
    assert "tenant2" not in {p["Name"] for p in osc_json(cli, "project", "list")}
    gone = as_user(cloud, "user2", "tenant2", "token", "issue")
    assert gone.returncode != 0


def test_hypervisor_show_and_stats(cli: OscRunner) -> None:
    hypervisors = osc_json(cli, "hypervisor", "list")
    assert len(hypervisors) == HOSTS
    name = hypervisors[0]["Hypervisor Hostname"]
    shown: dict[str, Any] = osc_json(cli, "hypervisor", "show", name)
    assert shown["hypervisor_hostname"] == name and shown["state"] == "up"
    assert "pci_stats" not in shown  # the pools are pcifleet's own (os-pci, /pcifleet/v1)
    stats = osc_json(cli, "hypervisor", "stats", "show")
    assert stats["count"] == HOSTS and stats["vcpus"] > 0 and stats["memory_mb"] > 0


def test_server_list_deleted_and_changes_since(cli: OscRunner, api: Api) -> None:
    net = api.network("adm-net", "physnet1", 240)
    flavor, image = api.flavor("adm.small"), api.image("adm-tiny")
    server = api.boot("adm-vm", flavor, image, api.direct_port(net, "adm-port"))
    api.wait_status(server, "ACTIVE")
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    changed = osc_json(cli, "server", "list", "--changes-since", hour_ago)
    assert server in {s["ID"] for s in changed}
    future = osc_json(cli, "server", "list", "--changes-since", "2051-01-01T00:00:00Z")
    assert future == []
    bad = run_osc(cli, "server", "list", "--changes-since", "2011/01/01")
    assert bad.returncode != 0
    api.req("DELETE", f"{COMPUTE}/servers/{server}", (204,))
    api.wait_gone(server)
    assert server not in {s["ID"] for s in osc_json(cli, "server", "list")}
    # (the CLI also sends deleted=False with --changes-since, which for an admin
    # leaves deletions out, as Nova does; the API tests cover changes-since alone)
    deleted = osc_json(cli, "server", "list", "--deleted", "--all-projects")
    assert {s["ID"]: s["Status"] for s in deleted}.get(server) == "DELETED"
