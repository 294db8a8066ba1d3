"""Lock, unlock and rebuild with the real ``openstack`` CLI against ``pcifleet
up`` (xml driver): a member locks its own server, cannot stop it while it is
locked, unlocks it and rebuilds it on another image; the server keeps its
host, its direct port and the VF bound to it.

Setup (network, flavor, images) is the admin's, straight over the API; every
step of the story is the member's, through the CLI.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import Cloud
from .helpers import COMPUTE, Api, OscRunner, assert_nothing_leaked, run_osc

pytestmark = pytest.mark.slow
DEMO = "pcifleet-demo"
# lock --reason and the list's --locked filter are microversion 2.73's
MV = ("--os-compute-api-version", "2.73")


def demo(cli: OscRunner, *args: str) -> Any:
    """``openstack ARGS -f json`` as the member; what it printed, parsed."""
    done = run_osc(cli, *args, "-f", "json", who=DEMO)
    assert done.returncode == 0, f"openstack {' '.join(args)} failed:\n{done.stderr}"
    # `server rebuild --wait` prints its progress ("Complete") before the JSON
    start = min(i for i in (done.stdout.find("{"), done.stdout.find("[")) if i >= 0)
    return json.loads(done.stdout[start:])


def demo_ok(cli: OscRunner, *args: str) -> None:
    done = run_osc(cli, *args, who=DEMO)
    assert done.returncode == 0, f"openstack {' '.join(args)} failed:\n{done.stderr}"


def test_a_locked_server_refuses_its_owner_then_is_unlocked_and_rebuilt(
    cloud: Cloud, cli: OscRunner, api: Api
) -> None:
    net = api.network("lk-net", "physnet1", 250, shared=True)
    api.flavor("lk.small")
    old_image = api.image("lk-img", visibility="public")
    new_image = api.image("lk-img2", data=b"\1" * 65536, visibility="public")
    port = demo(cli, "port", "create", "--network", net, "--vnic-type", "direct", "lk-port")
    made = demo(
        cli, "server", "create", "--flavor", "lk.small", "--image", "lk-img",
        "--port", port["id"], "--wait", "lk-vm",
    )  # fmt: skip
    sid = made["id"]
    assert made["status"] == "ACTIVE"
    host = api.req("GET", f"{COMPUTE}/servers/{sid}")["server"]["OS-EXT-SRV-ATTR:host"]
    disk = cloud.data_dir / "hosts" / host / "disks" / f"{sid}.qcow2"
    assert old_image.encode() in disk.read_bytes()[:65536]
    bound = api.req("GET", f"/networking/v2.0/ports/{port['id']}")["port"]["binding:profile"]

    demo_ok(cli, *MV, "server", "lock", "--reason", "maintenance window", sid)
    shown = demo(cli, *MV, "server", "show", sid)
    assert shown["locked"] is True and shown["locked_reason"] == "maintenance window"
    listed = demo(cli, *MV, "server", "list", "--locked")
    assert [s["ID"] for s in listed] == [sid]

    refused = run_osc(cli, "server", "stop", sid, who=DEMO)
    assert refused.returncode != 0
    assert f"Instance {sid} is locked" in refused.stderr and "409" in refused.stderr
    assert api.wait_status(sid, "ACTIVE")["OS-EXT-STS:power_state"] == 1

    demo_ok(cli, "server", "unlock", sid)
    assert demo(cli, *MV, "server", "list", "--locked") == []

    rebuilt = demo(cli, "server", "rebuild", "--image", "lk-img2", "--wait", sid)
    assert rebuilt["id"] == sid
    server = api.wait_status(sid, "ACTIVE")
    assert server["image"]["id"] == new_image
    assert server["OS-EXT-SRV-ATTR:host"] == host
    after = api.req("GET", f"/networking/v2.0/ports/{port['id']}")["port"]
    assert after["binding:profile"] == bound and after["device_id"] == sid
    # the host's agent defined the domain again, with the same VF, on a disk
    # backed by the new image (a qcow2 header, or the xml driver's placeholder,
    # names its backing file: the cached image, named by its id)
    xml = cloud.domain_xml(host, sid)
    bus, dev_fn = bound["pci_slot"].split(":")[1:]
    assert f'bus="0x{bus}" slot="0x{dev_fn.split(".")[0]}"' in xml, xml
    header = disk.read_bytes()[:65536]
    assert new_image.encode() in header and old_image.encode() not in header
    events = demo(cli, "server", "event", "list", sid)
    assert [e["Action"] for e in events][:3] == ["rebuild", "unlock", "lock"]

    demo_ok(cli, "server", "delete", "--wait", sid)
    demo_ok(cli, "port", "delete", port["id"])
    assert_nothing_leaked(api, net)
