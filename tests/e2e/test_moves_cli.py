"""Hot plug and moves driven by the real ``openstack`` CLI against ``pcifleet up``
(xml driver, two simulated hosts): ``server add port|remove port``, ``server add
network``, checked by the ports' binding, os-pci and the domain files the
hosts' agents write.

Setup (networks, ports, flavors, images) goes straight to the API to keep the
test fast; every change, and what the user sees of it, goes through the CLI.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.system import need_command

from .conftest import Cloud
from .helpers import (
    COMPUTE,
    NETWORK,
    Api,
    OscRunner,
    assert_nothing_leaked,
    osc_json,
    osc_ok,
    run_osc,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def names(api: Api) -> dict[str, str]:
    """Networks on physnet1 and physnet2, a small flavor and an image of this module's own."""
    return {
        "net": api.network("mv-net", "physnet1", 230),
        "net2": api.network("mv-net2", "physnet2", 231),
        "flavor": api.flavor("mv.small"),
        "image": api.image("mv-tiny"),
    }


def port(api: Api, port_id: str) -> dict[str, Any]:
    return dict(api.req("GET", f"{NETWORK}/ports/{port_id}")["port"])


def pci_of(api: Api, server_id: str) -> list[tuple[str, str, str]]:
    found = api.req("GET", f"{COMPUTE}/os-pci/detail", params={"instance_uuid": server_id})
    return sorted((d["host"], d["address"], d["status"]) for d in found["pci_devices"])


def boot(cli: OscRunner, name: str, port_id: str) -> dict[str, Any]:
    created = osc_json(
        cli,
        "server", "create", "--flavor", "mv.small", "--image", "mv-tiny",
        "--port", port_id, "--wait", name,
    )  # fmt: skip
    assert created["status"] == "ACTIVE", created
    return dict(created)


def test_add_and_remove_ports_and_networks(
    cloud: Cloud, cli: OscRunner, api: Api, names: dict[str, str]
) -> None:
    first = api.direct_port(names["net"], "mv-first")
    extra = api.direct_port(names["net"], "mv-extra")
    sid = boot(cli, "mv-plug", first)["id"]
    host = port(api, first)["binding:host_id"]
    assert len(pci_of(api, sid)) == 1

    osc_ok(cli, "server", "add", "port", "mv-plug", "mv-extra")
    api.wait_status(sid, "ACTIVE")
    shown = osc_json(cli, "port", "show", "mv-extra")
    assert shown["binding_host_id"] == host and shown["status"] == "ACTIVE", shown
    slot = shown["binding_profile"]["pci_slot"]
    assert (host, slot, "allocated") in pci_of(api, sid)
    xml = cloud.domain_xml(host, sid)
    assert shown["mac_address"] in xml
    bus, dev_fn = slot.split(":")[1], slot.split(":")[2]
    assert f'bus="0x{bus}" slot="0x{dev_fn.split(".")[0]}"' in xml, xml

    listed = osc_json(cli, "port", "list", "--server", sid)
    assert sorted(p["ID"] for p in listed) == sorted([first, extra])

    osc_ok(cli, "server", "remove", "port", "mv-plug", "mv-extra")
    api.wait_status(sid, "ACTIVE")
    after = osc_json(cli, "port", "show", "mv-extra")
    assert after["binding_host_id"] in ("", None) and not after["device_id"], after
    assert len(pci_of(api, sid)) == 1
    assert shown["mac_address"] not in cloud.domain_xml(host, sid)

    osc_ok(cli, "server", "add", "network", "mv-plug", "mv-net2")
    api.wait_status(sid, "ACTIVE")
    attached = api.req("GET", f"{COMPUTE}/servers/{sid}/os-interface")["interfaceAttachments"]
    (new,) = [a for a in attached if a["port_id"] != first]
    assert port(api, new["port_id"])["binding:vif_type"] == "bridge"
    assert new["mac_addr"] in cloud.domain_xml(host, sid)
    osc_ok(cli, "server", "remove", "network", "mv-plug", "mv-net2")

    def only_first() -> bool:
        found = api.req("GET", f"{COMPUTE}/servers/{sid}/os-interface")["interfaceAttachments"]
        return [a["port_id"] for a in found] == [first]

    wait_for("the network's port detached", only_first, 60)
    # the port the server made for the network is deleted with its detach
    assert api.client.get(f"{NETWORK}/ports/{new['port_id']}").status_code == 404
    events = [e["Action"] for e in osc_json(cli, "server", "event", "list", sid)]
    assert events.count("attach_interface") == 2 and "detach_interface" in events, events

    osc_ok(cli, "server", "delete", "--wait", sid)
    assert_nothing_leaked(api, names["net"])
    assert_nothing_leaked(api, names["net2"])


def domain_exists(cloud: Cloud, host: str, server_id: str) -> bool:
    return (cloud.data_dir / "hosts" / host / "domains" / f"{server_id}.xml").exists()


def disk_of(cloud: Cloud, host: str, server_id: str) -> Path:
    return cloud.data_dir / "hosts" / host / "disks" / f"{server_id}.qcow2"


def write_mark(disk: Path) -> None:
    """What a guest writes: a pattern in a real overlay, a key in a placeholder."""
    if disk.read_bytes()[:4] == b"QFI\xfb":
        qemu_io = need_command("qemu-io", "qemu-utils")
        subprocess.run([qemu_io, "-f", "qcow2", "-c", "write -P 0xab 0 64k", str(disk)],
                       check=True, capture_output=True)  # fmt: skip
    else:
        disk.write_text(json.dumps({**json.loads(disk.read_text()), "guest": "wrote"}))


def has_mark(disk: Path) -> bool:
    if disk.read_bytes()[:4] == b"QFI\xfb":
        qemu_io = need_command("qemu-io", "qemu-utils")
        done = subprocess.run([qemu_io, "-f", "qcow2", "-c", "read -P 0xab 0 64k", str(disk)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        return done.returncode == 0 and "Pattern verification failed" not in done.stdout
    return bool(json.loads(disk.read_text()).get("guest") == "wrote")


def move_copies(cloud: Cloud) -> list[Path]:
    root = cloud.data_dir / "move-disks"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_migrate_confirm_resize_revert(
    cloud: Cloud, cli: OscRunner, api: Api, names: dict[str, str]
) -> None:
    api.req("POST", f"{COMPUTE}/flavors", (200, 201),
            json={"flavor": {"name": "mv.big", "vcpus": 2, "ram": 512, "disk": 1}})  # fmt: skip
    api.direct_port(names["net"], "mv-mig-port")
    sid = boot(cli, "mv-mig", "mv-mig-port")["id"]
    before = osc_json(cli, "port", "show", "mv-mig-port")
    source = before["binding_host_id"]
    write_mark(disk_of(cloud, source, sid))

    osc_ok(cli, "server", "migrate", "--wait", "mv-mig")
    shown = osc_json(cli, "server", "show", "mv-mig")
    assert shown["status"] == "VERIFY_RESIZE", shown
    dest = shown["OS-EXT-SRV-ATTR:host"]
    assert dest != source
    moved = osc_json(cli, "port", "show", "mv-mig-port")
    assert moved["binding_host_id"] == dest and moved["status"] == "ACTIVE", moved
    slot = moved["binding_profile"]["pci_slot"]
    assert [h for h, _, _ in pci_of(api, sid)] == sorted([source, dest])
    assert (dest, slot, "allocated") in pci_of(api, sid)
    assert domain_exists(cloud, source, sid) and domain_exists(cloud, dest, sid)
    assert moved["mac_address"] in cloud.domain_xml(dest, sid)
    assert has_mark(disk_of(cloud, dest, sid)), "the guest's disk did not move with it"
    listed = osc_json(cli, "server", "migration", "list", "--server", sid)
    assert [(m["Status"], m["Source Compute"], m["Dest Compute"]) for m in listed] == [
        ("finished", source, dest)
    ], listed

    osc_ok(cli, "server", "resize", "confirm", "mv-mig")
    api.wait_status(sid, "ACTIVE")
    assert [h for h, _, _ in pci_of(api, sid)] == [dest]
    wait_for("the source's domain destroyed", lambda: not domain_exists(cloud, source, sid), 60)
    assert not disk_of(cloud, source, sid).exists() and move_copies(cloud) == []

    osc_ok(cli, "server", "resize", "--flavor", "mv.big", "--wait", "mv-mig")
    shown = osc_json(cli, "server", "show", "mv-mig")
    assert shown["status"] == "VERIFY_RESIZE" and shown["OS-EXT-SRV-ATTR:host"] == source
    assert osc_json(cli, "port", "show", "mv-mig-port")["binding_host_id"] == source
    osc_ok(cli, "server", "resize", "revert", "mv-mig")
    api.wait_status(sid, "ACTIVE")
    back = osc_json(cli, "port", "show", "mv-mig-port")
    assert back["binding_host_id"] == dest and back["binding_profile"]["pci_slot"] == slot
    shown = osc_json(cli, "server", "show", "mv-mig")
    assert shown["OS-EXT-SRV-ATTR:host"] == dest and "mv.small" in str(shown["flavor"])
    assert [h for h, _, _ in pci_of(api, sid)] == [dest]
    wait_for("the resize's domain destroyed", lambda: not domain_exists(cloud, source, sid), 60)
    assert has_mark(disk_of(cloud, dest, sid))  # the source's disk, as it was
    wait_for("the move's disk copy removed", lambda: move_copies(cloud) == [], 30)
    events = [e["Action"] for e in osc_json(cli, "server", "event", "list", sid)]
    assert {"migrate", "confirmResize", "resize", "revertResize"} <= set(events), events

    osc_ok(cli, "server", "delete", "--wait", sid)
    assert_nothing_leaked(api, names["net"])


def expected_on(api: Api, host: str) -> list[str]:
    """The servers the controller tells ``host``'s agent to keep."""
    return list(api.req("GET", f"/pcifleet/v1/hosts/{host}/instances")["instances"])


def test_evacuate_off_a_host_forced_down(
    cloud: Cloud, cli: OscRunner, api: Api, names: dict[str, str]
) -> None:
    api.direct_port(names["net"], "mv-evac-port")
    sid = boot(cli, "mv-evac", "mv-evac-port")["id"]
    old = osc_json(cli, "port", "show", "mv-evac-port")
    source = old["binding_host_id"]
    # the host is up: refused, naming it
    refused = run_osc(cli, "server", "evacuate", "mv-evac")
    assert refused.returncode != 0 and source in refused.stderr, refused.stderr

    osc_ok(cli, "compute", "service", "set", "--down", source, "nova-compute")
    try:
        # not --wait: this OSC waits for "ACTIVE" against a status it lowercases,
        # so its wait never ends whatever the cloud does
        osc_ok(cli, "server", "evacuate", "mv-evac")
        settled = api.wait_status(sid, "ACTIVE", "ERROR", timeout=90)
        assert settled["status"] == "ACTIVE", settled
        shown = osc_json(cli, "server", "show", "mv-evac")
        dest = shown["OS-EXT-SRV-ATTR:host"]
        assert shown["status"] == "ACTIVE" and dest != source, shown
        moved = osc_json(cli, "port", "show", "mv-evac-port")
        assert moved["binding_host_id"] == dest and moved["status"] == "ACTIVE", moved
        slot = moved["binding_profile"]["pci_slot"]
        assert pci_of(api, sid) == [(dest, slot, "allocated")]
        assert moved["mac_address"] in cloud.domain_xml(dest, sid)
        listed = osc_json(cli, "server", "migration", "list", "--server", sid)
        assert listed == [] or all(m["Status"] == "done" for m in listed), listed
        # the old host's domain is still there (its agent was told nothing while
        # down); it carries pcifleet's mark and the old host no longer keeps it
        assert "pcifleet:instance" in cloud.domain_xml(source, sid)
        assert sid not in expected_on(api, source) and sid in expected_on(api, dest)
    finally:  # in a process of its own: the runner may be what failed
        osc_ok(cloud.env, "compute", "service", "set", "--up", source, "nova-compute")
    # back up: its sweep destroys the stale domain
    wait_for("the old host's domain swept", lambda: not domain_exists(cloud, source, sid), 90)
    assert domain_exists(cloud, dest, sid)
    events = [e["Action"] for e in osc_json(cli, "server", "event", "list", sid)]
    assert "evacuate" in events, events
    osc_ok(cli, "server", "delete", "--wait", sid)
    assert_nothing_leaked(api, names["net"])


def vf_netdev(cloud: Cloud, host: str, slot: str) -> str:
    """The netdev of VF ``slot`` on a simulated host, as its sysfs names it."""
    (name,) = (cloud.data_dir / "hosts" / host / "sys/bus/pci/devices" / slot / "net").iterdir()
    return name.name


def test_live_migration_of_direct_and_macvtap_ports(
    cloud: Cloud, cli: OscRunner, api: Api, names: dict[str, str]
) -> None:
    api.direct_port(names["net"], "mv-live-direct")
    body = {"port": {"network_id": names["net"], "name": "mv-live-macvtap",
                     "binding:vnic_type": "macvtap"}}  # fmt: skip
    api.req("POST", f"{NETWORK}/ports", (201,), json=body)
    created = osc_json(
        cli,
        "server", "create", "--flavor", "mv.small", "--image", "mv-tiny",
        "--port", "mv-live-direct", "--port", "mv-live-macvtap", "--wait", "mv-live",
    )  # fmt: skip
    sid = created["id"]
    source = osc_json(cli, "port", "show", "mv-live-direct")["binding_host_id"]
    old_slot = osc_json(cli, "port", "show", "mv-live-macvtap")["binding_profile"]["pci_slot"]
    old_netdev = vf_netdev(cloud, source, old_slot)
    assert f'dev="{old_netdev}"' in cloud.domain_xml(source, sid)

    osc_ok(cli, "server", "migrate", "--live-migration", "--wait", "mv-live")
    shown = api.wait_status(sid, "ACTIVE")
    dest = shown["OS-EXT-SRV-ATTR:host"]
    assert dest != source
    direct = osc_json(cli, "port", "show", "mv-live-direct")
    macvtap = osc_json(cli, "port", "show", "mv-live-macvtap")
    assert direct["binding_host_id"] == dest == macvtap["binding_host_id"]
    slots = sorted(p["binding_profile"]["pci_slot"] for p in (direct, macvtap))
    assert pci_of(api, sid) == sorted((dest, s, "allocated") for s in slots)
    xml = cloud.domain_xml(dest, sid)
    # the macvtap interface moved onto the destination VF's netdev; the direct
    # port was plugged there on the destination's VF
    new_netdev = vf_netdev(cloud, dest, macvtap["binding_profile"]["pci_slot"])
    assert f'dev="{new_netdev}"' in xml and direct["mac_address"] in xml
    bus, dev_fn = direct["binding_profile"]["pci_slot"].split(":")[1:]
    assert f'bus="0x{bus}" slot="0x{dev_fn.split(".")[0]}"' in xml, xml
    wait_for("the source's domain removed", lambda: not domain_exists(cloud, source, sid), 60)
    listed = osc_json(cli, "server", "migration", "list", "--server", sid)
    assert all(m["Status"] == "completed" for m in listed), listed
    events = [e["Action"] for e in osc_json(cli, "server", "event", "list", sid)]
    assert "live-migration" in events, events

    osc_ok(cli, "server", "delete", "--wait", sid)
    assert_nothing_leaked(api, names["net"])
