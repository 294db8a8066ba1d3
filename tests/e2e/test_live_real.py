"""Live migration between two real libvirt daemons: ``pcifleet up --virt
libvirt`` with each simulated host on its own libvirtd (``--libvirt-uri
HOST=URI``; ``tests/e2e/peer_libvirtd.py`` starts them, each in its own mount
namespace with its own ``host_uuid``), driven by the real ``openstack`` CLI.

A server with a ``macvtap`` port (on its host's veth standing in for a VF)
runs as a QEMU domain on one daemon, moves while it runs to the
other (libvirt's peer-to-peer migration: its memory over TCP, its disk copied
into the overlay the destination prepared), onto the destination VF's netdev,
and comes back with ``--host``. Checked with ``virsh`` on both daemons,
``ip`` and the ports' bindings; nothing is left after the delete.

No normal port: the daemons share this machine's network namespace, so the
destination cannot make the guest's tap (``tap<port>``) while the source's
still exists, as two real hosts can.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pcifleet.cli.simnet import remove_veths, vf_netdevs
from pcifleet.host import read_sysfs
from tests.system import need_command, unavailable

from .helpers import (
    Api,
    OscRunner,
    assert_nothing_leaked,
    osc_json,
    osc_ok,
    start_up,
    stop,
)
from .peer_libvirtd import missing, peer_libvirtd
from .test_real_vms import LAYOUT, links, macvtaps_on

pytestmark = pytest.mark.slow
HOSTS = {"compute-1": "127.0.0.2", "compute-2": "127.0.0.3"}


@dataclass
class TwoDaemons:
    url: str
    data_dir: Path
    env: dict[str, str]
    uris: dict[str, str]


def virsh(uri: str, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["virsh", "-c", uri, *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check:
        assert done.returncode == 0, f"virsh {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def cloud() -> Iterator[TwoDaemons]:
    reason = missing()
    if reason:
        unavailable(reason)
    need_command("qemu-img", "qemu-utils")
    work = Path(tempfile.mkdtemp(prefix="pcifleet-live-"))
    work.chmod(0o711)  # libvirt's qemu user must reach the disks under it
    (work / "layout.toml").write_text(LAYOUT)
    data_dir = work / "data"
    proc = None
    try:
        with (
            peer_libvirtd(work / "lv1", HOSTS["compute-1"]) as one,
            peer_libvirtd(work / "lv2", HOSTS["compute-2"]) as two,
        ):
            uris = {"compute-1": one, "compute-2": two}
            proc, url = start_up(
                data_dir, "--virt", "libvirt", "--layout", str(work / "layout.toml"),
                *(f"--libvirt-uri={h}={u}" for h, u in uris.items()), hosts=2,
            )  # fmt: skip
            env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(data_dir / "clouds.yaml"))
            for key in [k for k in env if k.startswith("OS_") and k != "OS_CLIENT_CONFIG_FILE"]:
                env.pop(key)
            yield TwoDaemons(url, data_dir, env, uris)
            stop(proc)
            proc = None
    finally:
        if proc is not None:
            stop(proc)
        for host in HOSTS:
            sysfs = data_dir / "hosts" / host / "sys"
            if sysfs.exists():
                remove_veths(vf_netdevs(read_sysfs(sysfs).devices))
        shutil.rmtree(work, ignore_errors=True)


def netdev_of(cloud: TwoDaemons, host: str, slot: str) -> str:
    sysfs = cloud.data_dir / "hosts" / host / "sys"
    return next(str(d.ifname) for d in read_sysfs(sysfs).devices if str(d.address) == slot)


def running_on(cloud: TwoDaemons, host: str, sid: str) -> bool:
    names = virsh(cloud.uris[host], "list", "--name").split()
    return f"pcifleet-{sid}" in names


def disk_of(cloud: TwoDaemons, host: str, sid: str) -> str:
    rows = virsh(cloud.uris[host], "domblklist", f"pcifleet-{sid}").splitlines()
    return next(r.split()[1] for r in rows if r.strip().startswith("vda"))


def last_action(api: Api, sid: str) -> list[dict[str, object]]:
    """The events of the server's latest action, with their details (why it failed)."""
    headers = {"OpenStack-API-Version": "compute 2.84"}
    actions = api.req("GET", f"/compute/v2.1/servers/{sid}/os-instance-actions", headers=headers)
    request_id = actions["instanceActions"][0]["request_id"]
    shown = api.req(
        "GET", f"/compute/v2.1/servers/{sid}/os-instance-actions/{request_id}", headers=headers
    )
    return list(shown["instanceAction"]["events"])


def test_a_running_server_moves_between_two_libvirt_daemons_and_back(
    cloud: TwoDaemons, cli: OscRunner, api: Api
) -> None:
    image = cloud.data_dir.parent / "tiny.img"
    image.write_bytes(b"\0" * (1 << 20))
    osc_ok(cli, "image", "create", "--disk-format", "raw", "--file", str(image), "live-tiny")
    osc_ok(cli, "flavor", "create", "--ram", "128", "--vcpus", "1", "--disk", "1", "live.tiny")
    net = osc_json(
        cli, "network", "create", "--provider-network-type", "flat",
        "--provider-physical-network", "physnet1", "live-sriov",
    )  # fmt: skip
    osc_ok(cli, "subnet", "create", "--network", "live-sriov", "--subnet-range",
           "10.81.0.0/24", "live-sriov-sub")  # fmt: skip
    bridges = ["brq" + net["id"][:11]]
    try:
        mvt = osc_json(cli, "port", "create", "--network", net["id"], "--vnic-type", "macvtap",
                       "live-mvt")  # fmt: skip
        server = osc_json(
            cli, "server", "create", "--flavor", "live.tiny", "--image", "live-tiny",
            "--nic", f"port-id={mvt['id']}", "--wait", "live-1",
        )  # fmt: skip
        sid = server["id"]
        assert server["status"] == "ACTIVE", server
        source = server["OS-EXT-SRV-ATTR:host"]
        dest = next(h for h in HOSTS if h != source)
        assert running_on(cloud, source, sid) and not running_on(cloud, dest, sid)
        first_disk = disk_of(cloud, source, sid)

        for there, back in ((dest, source), (source, dest)):
            before = osc_json(cli, "port", "show", mvt["id"])["binding_profile"]["pci_slot"]
            osc_ok(
                cli, "--os-compute-api-version", "2.30", "server", "migrate",
                "--live-migration", "--host", there, "--wait", sid,
            )  # fmt: skip
            shown = api.wait_status(sid, "ACTIVE", timeout=180)
            assert shown["OS-EXT-SRV-ATTR:host"] == there, "\n".join(
                map(str, last_action(api, sid))
            )
            # the guest runs on the other daemon only, never restarted by us:
            # libvirt moved it (and undefined it where it was)
            assert running_on(cloud, there, sid)
            assert f"pcifleet-{sid}" not in virsh(cloud.uris[back], "list", "--all", "--name")
            bound = osc_json(cli, "port", "show", mvt["id"])
            assert bound["binding_host_id"] == there
            slot = bound["binding_profile"]["pci_slot"]
            netdev = netdev_of(cloud, there, slot)
            assert macvtaps_on(netdev), f"no macvtap on {netdev} (VF {slot} of {there})"
            assert not macvtaps_on(netdev_of(cloud, back, before))
            ifaces = virsh(cloud.uris[there], "domiflist", f"pcifleet-{sid}")
            assert netdev in ifaces and mvt["mac_address"] in ifaces
            # its disk is the destination's own overlay, on that host's image copy
            disk = disk_of(cloud, there, sid)
            assert f"/hosts/{there}/" in disk and Path(disk).exists()
            assert not Path(first_disk).exists() or there == source
            listed = osc_json(cli, "server", "migration", "list", "--server", sid)
            assert listed[0]["Status"] == "completed", listed

        osc_ok(cli, "server", "delete", "--wait", sid)
        for host in HOSTS:
            assert f"pcifleet-{sid}" not in virsh(cloud.uris[host], "list", "--all", "--name")
        assert not macvtaps_on(netdev_of(cloud, source, before))
        assert_nothing_leaked(api, net["id"])
        assert [k for k in links() if k.get("ifname", "").startswith("macvtap")] == []
    finally:
        for bridge in bridges:
            subprocess.run(["ip", "link", "del", "dev", bridge], capture_output=True, check=False)
