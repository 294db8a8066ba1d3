"""Real QEMU domains: ``pcifleet up --virt libvirt`` on this machine's libvirtd,
driven by the real ``openstack`` CLI and checked with ``virsh``, ``qemu-img``
and ``ip``.

Needs root, a running libvirtd at qemu:///system and qemu-img (CI installs and
starts them: ``.ci/libvirtd``). One simulated host with one NIC of four VFs
keeps the veths few; its VF netdevs are real veths, so a ``macvtap`` port
attaches for real, while a ``direct`` port (a PCI VF no host here has) must
fail at start with libvirt's reason and leak nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pcifleet.cli.simnet import remove_veths, vf_netdevs
from pcifleet.host import read_sysfs
from tests.system import need_command, unavailable

from .helpers import (
    Api,
    OscRunner,
    admin_token,
    assert_nothing_leaked,
    osc_json,
    osc_ok,
    start_up,
    stop,
    wait_for,
)

pytestmark = pytest.mark.slow
URI = "qemu:///system"
LAYOUT = """
hostname = "real"

[[nics]]
address = "0000:3b:00.0"
vendor_id = "8086"
product_id = "1572"
vf_product_id = "154c"
numvfs = 4
totalvfs = 8
numa_node = 0
ifname = "ens1f0"
driver = "i40e"
vf_driver = "iavf"

[pci]
device_spec = [{ devname = "ens1f0", physical_network = "physnet1" }]
"""


def virsh(*args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check:
        assert done.returncode == 0, f"virsh {' '.join(args)}: {done.stderr}"
    return done.stdout


def domain(server_id: str) -> str:
    return f"pcifleet-{server_id}"


def links() -> list[dict[str, Any]]:
    out = subprocess.run(["ip", "-j", "-d", "link", "show"], capture_output=True, text=True)
    return list(json.loads(out.stdout or "[]"))


def macvtaps_on(netdev: str) -> list[str]:
    """The macvtap interfaces whose lower device is ``netdev``."""
    return [
        str(k["ifname"])
        for k in links()
        if k.get("link") == netdev and k.get("linkinfo", {}).get("info_kind") == "macvtap"
    ]


def domiflist(server_id: str) -> list[dict[str, str]]:
    rows = virsh("domiflist", domain(server_id)).splitlines()[2:]
    keys = ("interface", "type", "source", "model", "mac")
    return [dict(zip(keys, r.split(), strict=True)) for r in rows if r.strip()]


@dataclass
class RealCloud:
    url: str
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None
    # the bridges this module's networks got (pcifleet leaves them for reuse)
    bridges: list[str]


def _preflight() -> None:
    if os.geteuid() != 0:
        unavailable("real QEMU domains need root (veths, bridges, qemu:///system)")
    need_command("virsh", "libvirt-clients")
    need_command("qemu-img", "qemu-utils")
    done = subprocess.run(
        ["virsh", "-c", URI, "version"], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        unavailable(f"no libvirtd at {URI} (start it: .ci/libvirtd start): {done.stderr.strip()}")


def _clean_host(data_dir: Path) -> None:
    """Remove what a failed run may leave on the machine: its domains and veths."""
    tag_file = data_dir / "hosts" / "sim-net-tag"
    tag = tag_file.read_text().strip() if tag_file.exists() else None
    for name in virsh("list", "--all", "--name", check=False).split():
        if not name.startswith("pcifleet-") or tag is None:
            continue
        if f"@{tag}" in virsh("dumpxml", name, check=False):
            virsh("destroy", name, check=False)
            virsh("undefine", "--managed-save", name, check=False)
    sysfs = data_dir / "hosts" / "compute-1" / "sys"
    if sysfs.exists():
        remove_veths(vf_netdevs(read_sysfs(sysfs).devices))


@pytest.fixture(scope="module")
def real() -> Iterator[RealCloud]:
    _preflight()
    # libvirt's qemu user must reach each disk: a directory all may enter.
    work = Path(tempfile.mkdtemp(prefix="pcifleet-real-"))
    work.chmod(0o711)
    layout = work / "layout.toml"
    layout.write_text(LAYOUT)
    data_dir = work / "data"
    proc, url = start_up(data_dir, "--virt", "libvirt", "--layout", str(layout), hosts=1)
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(data_dir / "clouds.yaml"))
    for key in [k for k in env if k.startswith("OS_") and k != "OS_CLIENT_CONFIG_FILE"]:
        env.pop(key)
    cloud = RealCloud(url, data_dir, env, proc, [])
    try:
        yield cloud
    finally:
        stop(cloud.proc)
        _clean_host(data_dir)
        for bridge in cloud.bridges:
            subprocess.run(["ip", "link", "del", "dev", bridge], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def api(real: RealCloud) -> Iterator[Api]:
    client = Api(real.url, admin_token(real.url, real.data_dir))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def cli(real: RealCloud) -> Iterator[OscRunner]:
    runner = OscRunner(real.env)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture(scope="module")
def setup(cli: OscRunner, real: RealCloud) -> dict[str, str]:
    """Through the CLI: an image (a clean stop waits 2 s for its guest, which has
    no OS to answer the power button), a flavor, a physnet1 network and a plain one."""
    image_file = real.data_dir.parent / "tiny.img"
    image_file.write_bytes(b"\0" * (1 << 20))
    osc_ok(
        cli, "image", "create", "--disk-format", "raw", "--file", str(image_file),
        "--property", "os_shutdown_timeout=2", "real-tiny",
    )  # fmt: skip
    osc_ok(cli, "flavor", "create", "--ram", "128", "--vcpus", "1", "--disk", "1", "real.tiny")
    net = osc_json(
        cli, "network", "create", "--provider-network-type", "flat",
        "--provider-physical-network", "physnet1", "real-sriov",
    )  # fmt: skip
    osc_ok(cli, "subnet", "create", "--network", "real-sriov", "--subnet-range",
           "10.71.0.0/24", "real-sriov-sub")  # fmt: skip
    plain = osc_json(cli, "network", "create", "real-plain")
    osc_ok(cli, "subnet", "create", "--network", "real-plain", "--subnet-range",
           "10.72.0.0/24", "real-plain-sub")  # fmt: skip
    real.bridges.extend("brq" + n["id"][:11] for n in (net, plain))
    return {"net": net["id"], "plain": plain["id"]}


def port(cli: OscRunner, network: str, name: str, vnic: str = "normal") -> dict[str, Any]:
    return dict(osc_json(cli, "port", "create", "--network", network, "--vnic-type", vnic, name))


def test_a_server_with_macvtap_and_normal_ports_is_a_real_domain(
    cli: OscRunner, api: Api, setup: dict[str, str], real: RealCloud
) -> None:
    mvt = port(cli, setup["net"], "real-mvt", "macvtap")
    normal = port(cli, setup["plain"], "real-normal")
    server = osc_json(
        cli, "server", "create", "--flavor", "real.tiny", "--image", "real-tiny",
        "--nic", f"port-id={mvt['id']}", "--nic", f"port-id={normal['id']}", "--wait", "real-1",
    )  # fmt: skip
    sid = server["id"]
    assert server["status"] == "ACTIVE", server
    assert virsh("domstate", domain(sid)).strip() == "running"

    # Every NIC, in port order: the macvtap on the claimed VF's netdev with the
    # port's MAC, then the bridge of the plain network with the normal port's.
    bound = osc_json(cli, "port", "show", mvt["id"])
    vf = bound["binding_profile"]["pci_slot"]
    vf_netdev = next(
        d.ifname
        for d in read_sysfs(real.data_dir / "hosts" / "compute-1" / "sys").devices
        if str(d.address) == vf
    )
    macvtap, bridge = domiflist(sid)
    assert (macvtap["type"], macvtap["source"], macvtap["mac"]) == (
        "direct",
        vf_netdev,
        mvt["mac_address"],
    )
    assert (bridge["type"], bridge["mac"]) == ("bridge", normal["mac_address"])
    assert bridge["source"] == "brq" + setup["plain"][:11]
    by_name = {link["ifname"]: link for link in links()}
    # libvirt gives the VF (here its veth) the port's MAC, as on real hardware.
    assert by_name[vf_netdev]["address"] == mvt["mac_address"]
    assert by_name[bridge["interface"]]["master"] == bridge["source"]

    # Its own disk: a qcow2 overlay backed by the host's cached image.
    disk = next(line.split()[1] for line in virsh("domblklist", domain(sid)).splitlines()
                if line.strip().startswith("vda"))  # fmt: skip
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "-U", "--output", "json", disk],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert info["format"] == "qcow2" and sid in disk
    assert Path(info["backing-filename"]).parent.name == "images"

    # Power actions change the real domain.
    osc_ok(cli, "server", "stop", sid)
    api.wait_status(sid, "SHUTOFF", timeout=120)
    assert virsh("domstate", domain(sid)).strip() == "shut off"
    osc_ok(cli, "server", "start", sid)
    api.wait_status(sid, "ACTIVE", timeout=120)
    assert virsh("domstate", domain(sid)).strip() == "running"
    before = virsh("domid", domain(sid)).strip()
    osc_ok(cli, "server", "reboot", sid)
    api.wait_status(sid, "ACTIVE", timeout=120)
    # A reboot the guest ignored ends in a power cycle: a new QEMU process.
    assert virsh("domid", domain(sid)).strip() not in ("", before)

    osc_ok(cli, "server", "delete", "--wait", sid)
    assert domain(sid) not in virsh("list", "--all", "--name").split()
    assert not Path(disk).exists()
    left = links()
    assert not macvtaps_on(vf_netdev)
    assert bridge["interface"] not in {k["ifname"] for k in left}
    assert_nothing_leaked(api, setup["net"])


def test_a_direct_port_cannot_start_without_the_vf_and_leaks_nothing(
    cli: OscRunner, api: Api, setup: dict[str, str]
) -> None:
    direct = port(cli, setup["net"], "real-direct", "direct")
    created = osc_json(
        cli, "server", "create", "--flavor", "real.tiny", "--image", "real-tiny",
        "--nic", f"port-id={direct['id']}", "real-direct",
    )  # fmt: skip
    server = api.wait_status(created["id"], "ERROR", timeout=120)
    assert "libvirt driver" in server["fault"]["message"]
    assert "passthrough" in server["fault"]["message"] or "PCI" in server["fault"]["message"]
    assert domain(created["id"]) not in virsh("list", "--all", "--name").split()
    # The claim is given back and the port unbound at once; the port stays the
    # ERROR server's (device_id) until the server is deleted, as in Nova.
    assert all(p["count"] == p["total"] for p in api.pools())
    shown = osc_json(cli, "port", "show", direct["id"])
    assert (shown["binding_host_id"], shown["binding_profile"]) == ("", {})
    osc_ok(cli, "server", "delete", "--wait", created["id"])
    assert_nothing_leaked(api, setup["net"])


def test_a_macvtap_port_is_hot_plugged_into_and_out_of_a_running_domain(
    cli: OscRunner, api: Api, setup: dict[str, str], real: RealCloud
) -> None:
    normal = port(cli, setup["plain"], "real-hp-normal")
    sid = osc_json(
        cli, "server", "create", "--flavor", "real.tiny", "--image", "real-tiny",
        "--nic", f"port-id={normal['id']}", "--wait", "real-hotplug",
    )["id"]  # fmt: skip
    # On a VLAN network: the veth standing in for the VF takes it untagged.
    vlan = osc_json(
        cli, "network", "create", "--provider-network-type", "vlan",
        "--provider-physical-network", "physnet1", "--provider-segment", "300", "real-vlan",
    )  # fmt: skip
    osc_ok(cli, "subnet", "create", "--network", "real-vlan", "--subnet-range",
           "10.74.0.0/24", "real-vlan-sub")  # fmt: skip
    mvt = port(cli, vlan["id"], "real-hp-mvt", "macvtap")
    osc_ok(cli, "server", "add", "port", sid, mvt["id"])
    bound = wait_for(
        "the attached port to be bound",
        lambda: (b := osc_json(cli, "port", "show", mvt["id"]))["binding_host_id"] and b,
        timeout=60,
    )
    vf = bound["binding_profile"]["pci_slot"]
    vf_netdev = next(
        d.ifname
        for d in read_sysfs(real.data_dir / "hosts" / "compute-1" / "sys").devices
        if str(d.address) == vf
    )
    assert virsh("domstate", domain(sid)).strip() == "running"
    plugged = {i["mac"]: i for i in domiflist(sid)}
    assert plugged[mvt["mac_address"]]["type"] == "direct"
    assert plugged[mvt["mac_address"]]["source"] == vf_netdev
    assert normal["mac_address"] in plugged
    # Unplugging from a running guest needs the guest's OS to let the device go
    # (PCIe hot unplug is a request); this guest has none, so it is unplugged
    # from the stopped server, and is gone when it starts again.
    osc_ok(cli, "server", "stop", sid)
    api.wait_status(sid, "SHUTOFF", timeout=120)
    osc_ok(cli, "server", "remove", "port", sid, mvt["id"])
    wait_for(
        "the VF to be free again",
        lambda: all(p["count"] == p["total"] for p in api.pools()),
        timeout=60,
    )
    osc_ok(cli, "server", "start", sid)
    api.wait_status(sid, "ACTIVE", timeout=120)
    assert [i["mac"] for i in domiflist(sid)] == [normal["mac_address"]]
    assert not macvtaps_on(vf_netdev)
    osc_ok(cli, "server", "delete", "--wait", sid)
    real.bridges.append("brq" + vlan["id"][:11])
    assert_nothing_leaked(api, vlan["id"])


def test_a_restarted_controller_takes_back_its_domains_and_their_state(
    cli: OscRunner, api: Api, setup: dict[str, str], real: RealCloud
) -> None:
    normal = port(cli, setup["plain"], "real-keep")
    sid = osc_json(
        cli, "server", "create", "--flavor", "real.tiny", "--image", "real-tiny",
        "--nic", f"port-id={normal['id']}", "--wait", "real-keep",
    )["id"]  # fmt: skip
    kept = port(cli, setup["plain"], "real-off")
    off = osc_json(
        cli, "server", "create", "--flavor", "real.tiny", "--image", "real-tiny",
        "--nic", f"port-id={kept['id']}", "--wait", "real-off",
    )["id"]  # fmt: skip
    running_id = virsh("domid", domain(sid)).strip()
    stop(real.proc)
    # While pcifleet is down: one guest powers off behind its back.
    virsh("destroy", domain(off))
    real.proc, url = start_up(
        real.data_dir, "--virt", "libvirt", "--layout",
        str(real.data_dir.parent / "layout.toml"), hosts=1,
    )  # fmt: skip
    api.client.base_url = url  # type: ignore[assignment]
    api.client.headers["X-Auth-Token"] = admin_token(url, real.data_dir)
    real.url = url
    # The running domain was adopted as it was (the same QEMU process) ...
    assert api.wait_status(sid, "ACTIVE")["OS-EXT-STS:power_state"] == 1
    assert virsh("domid", domain(sid)).strip() == running_id
    # ... and the one found off is SHUTOFF now, as Nova's power sync does.
    wait_for(
        "the server found off to be SHUTOFF",
        lambda: (api.server(off) or {}).get("status") == "SHUTOFF",
        timeout=60,
    )
    for server in (sid, off):
        api.req("DELETE", f"/compute/v2.1/servers/{server}", (204,))
        api.wait_gone(server, timeout=120)


def test_local_runs_this_machines_agent_on_real_libvirt() -> None:
    """``pcifleet up --local``: the all-in-one. Its agent reads a real kernel's
    sysfs (the captured igb host, given as [agent] sysfs_root since this
    machine has no SR-IOV NIC), reports its VFs under this machine's name, and
    a plain server becomes a real domain."""
    _preflight()
    from tests.host.conftest import K612_7VFS, real_sysfs

    work = Path(tempfile.mkdtemp(prefix="pcifleet-local-"))
    work.chmod(0o711)
    sysfs = real_sysfs(K612_7VFS, work / "capture")
    config = work / "pcifleet.toml"
    config.write_text(
        '[pci]\ndevice_spec = [{ vendor_id = "8086", product_id = "10ca", '
        'physical_network = "physnet1" }]\n'
        f'[agent]\nhost = "aio-{os.getpid()}"\nsysfs_root = "{sysfs}"\n'
    )
    data_dir = work / "data"
    proc, url = start_up(data_dir, "--local", "--config", str(config), hosts=0)
    api = Api(url, admin_token(url, data_dir))
    server_id = None
    try:
        host = f"aio-{os.getpid()}"
        pools = [p for p in api.pools() if p["host"] == host]
        vfs = [d for d in read_sysfs(sysfs).devices if d.product_id == "10ca"]
        assert sum(p["total"] for p in pools) == len(vfs) >= 7, pools
        assert {p["tags"].get("physical_network") for p in pools} == {"physnet1"}
        net = api.req("POST", "/networking/v2.0/networks", (201,),
                      json={"network": {"name": "aio"}})["network"]  # fmt: skip
        api.req("POST", "/networking/v2.0/subnets", (201,), json={"subnet": {
            "network_id": net["id"], "cidr": "10.73.0.0/24", "ip_version": 4}})  # fmt: skip
        image = work / "tiny.img"
        image.write_bytes(b"\0" * (1 << 20))
        image_id = api.image("aio-tiny", image.read_bytes())
        flavor = api.flavor("aio.tiny")
        body = {"server": {"name": "aio-1", "flavorRef": flavor, "imageRef": image_id,
                           "networks": [{"uuid": net["id"]}]}}  # fmt: skip
        server_id = api.req("POST", "/compute/v2.1/servers", (202,), json=body)["server"]["id"]
        shown = api.wait_status(server_id, "ACTIVE", "ERROR", timeout=120)
        assert shown["status"] == "ACTIVE", shown.get("fault")
        assert shown["OS-EXT-SRV-ATTR:host"] == host
        assert virsh("domstate", domain(server_id)).strip() == "running"
        api.req("DELETE", f"/compute/v2.1/servers/{server_id}", (204,))
        api.wait_gone(server_id, timeout=120)
        server_id = None
        subprocess.run(["ip", "link", "del", "dev", "brq" + net["id"][:11]], check=False)
    finally:
        api.close()
        stop(proc)
        if server_id is not None:
            virsh("destroy", domain(server_id), check=False)
            virsh("undefine", domain(server_id), check=False)
        shutil.rmtree(work, ignore_errors=True)
