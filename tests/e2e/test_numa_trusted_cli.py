"""Guest NUMA, trusted VFs, VF index ranges and distinct PFs through the real
``openstack`` CLI against ``pcifleet up`` (issue #13 items 1, 2, 7a, 7b).

One simulated host of its own layout: ens1f0 (NUMA 0) splits its VFs by
``vf_index`` between plain and trusted physnet1 pools, ens3f0 (NUMA 0) is a
second physnet1 PF, ens2f0 (NUMA 1) is physnet2. ``pcifleet up`` gives the
host two cells, one per device NUMA node.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree

from .conftest import Cloud, running_up
from .helpers import OscRunner, osc_json, osc_ok, run_osc

pytestmark = pytest.mark.slow


def _nic(address: str, ifname: str, numa: int, numvfs: int, mac: str) -> str:
    return f"""
[[nics]]
address = "{address}"
vendor_id = "8086"
product_id = "1572"
vf_product_id = "154c"
numvfs = {numvfs}
totalvfs = {numvfs}
vf_offset = 16
vf_stride = 1
numa_node = {numa}
ifname = "{ifname}"
driver = "i40e"
vf_driver = "iavf"
mac = "{mac}"
"""


LAYOUT = (
    'hostname = "numa"\n'
    + _nic("0000:3b:00.0", "ens1f0", 0, 8, "3c:fd:fe:00:3b:00")
    + _nic("0000:5f:00.0", "ens3f0", 0, 4, "3c:fd:fe:00:5f:00")
    + _nic("0000:86:00.0", "ens2f0", 1, 4, "3c:fd:fe:00:86:00")
    + """
[pci]
device_spec = [
  { devname = "ens1f0", vf_index = "0-5", physical_network = "physnet1" },
  { devname = "ens1f0", vf_index = "6-7", physical_network = "physnet1", trusted = "true" },
  { devname = "ens3f0", physical_network = "physnet1" },
  { devname = "ens2f0", physical_network = "physnet2" },
]
alias = []
"""
)


@pytest.fixture(scope="module")
def numa_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cloud, OscRunner]]:
    work = tmp_path_factory.mktemp("pcifleet-numa")
    layout = work / "layout.toml"
    layout.write_text(LAYOUT)
    data_dir = work / "data"
    with running_up(data_dir, "--layout", str(layout), hosts=1) as url:
        clouds = data_dir / "clouds.yaml"
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds))
        for key in [k for k in env if k.startswith("OS_") and k != "OS_CLIENT_CONFIG_FILE"]:
            env.pop(key)
        cli = OscRunner(env)
        try:
            image = work / "tiny.raw"
            image.write_bytes(b"\0" * 65536)
            osc_ok(cli, "image", "create", "--file", str(image), "--disk-format", "raw", "tiny")
            for physnet, vlan in (("physnet1", "101"), ("physnet2", "201")):
                osc_ok(cli, "network", "create", "--provider-network-type", "vlan",
                       "--provider-physical-network", physnet, "--provider-segment", vlan,
                       f"{physnet}-net")  # fmt: skip
                osc_ok(cli, "subnet", "create", "--network", f"{physnet}-net",
                       "--subnet-range", f"10.{vlan}.0.0/24", f"{physnet}-sub")  # fmt: skip
            yield Cloud(url, data_dir, clouds, env), cli
        finally:
            cli.close()


def port(cli: OscRunner, name: str, physnet: str, *extra: str) -> str:
    made = osc_json(cli, "port", "create", "--network", f"{physnet}-net", "--vnic-type",
                    "direct", *extra, name)  # fmt: skip
    return str(made["id"])


def flavor(cli: OscRunner, name: str, *properties: str) -> None:
    osc_ok(cli, "flavor", "create", "--vcpus", "4", "--ram", "2048", "--disk", "1", name)
    if properties:
        osc_ok(cli, "flavor", "set", *(a for p in properties for a in ("--property", p)), name)


def boot(
    cli: OscRunner, name: str, flavor_name: str, *ports: str, hint: str = ""
) -> dict[str, Any]:
    args = ["server", "create", "--flavor", flavor_name, "--image", "tiny", "--wait"]
    args += [a for p in ports for a in ("--port", p)]
    args += ["--hint", hint] if hint else []
    run_osc(cli, *args, name)  # --wait exits non-zero on ERROR; the server says why
    return dict(osc_json(cli, "server", "show", name))


def domain(cloud: Cloud, server: dict[str, Any]) -> etree._Element:
    xml = cloud.domain_xml(server["OS-EXT-SRV-ATTR:host"], server["id"])
    return etree.fromstring(xml.encode())


def test_one_numa_node_and_required_policy_across_two_cells_is_no_valid_host(
    numa_cloud: tuple[Cloud, OscRunner],
) -> None:
    cloud, cli = numa_cloud
    flavor(cli, "numa.one", "hw:numa_nodes=1", "hw:pci_numa_affinity_policy=required")
    a = port(cli, "split-a", "physnet1")  # a VF on NUMA 0
    b = port(cli, "split-b", "physnet2")  # a VF on NUMA 1
    server = boot(cli, "split", "numa.one", a, b)
    assert server["status"] == "ERROR"
    assert "No valid host" in str(server["fault"]) and "NUMA" in str(server["fault"])
    osc_ok(cli, "server", "delete", "--wait", "split")

    # both ports on cell 0: it boots, and the domain lives on cell 0
    c = port(cli, "same-c", "physnet1")
    server = boot(cli, "same", "numa.one", a, c)
    assert server["status"] == "ACTIVE", server.get("fault")
    root = domain(cloud, server)
    assert root.find("numatune/memory").get("nodeset") == "0"  # type: ignore[union-attr]
    assert root.find("cpu/numa/cell").get("cpus") == "0-3"  # type: ignore[union-attr]
    assert root.find("cputune") is None  # shared CPUs: not pinned
    osc_ok(cli, "server", "delete", "--wait", "same")


def test_a_required_port_and_dedicated_cpus_pin_the_guest_to_the_ports_cell(
    numa_cloud: tuple[Cloud, OscRunner],
) -> None:
    cloud, cli = numa_cloud
    flavor(cli, "pinned", "hw:cpu_policy=dedicated")
    p = port(cli, "pinned-p", "physnet2", "--numa-policy-required")
    assert osc_json(cli, "port", "show", p)["numa_affinity_policy"] == "required"
    server = boot(cli, "pinned", "pinned", p)
    assert server["status"] == "ACTIVE", server.get("fault")
    root = domain(cloud, server)
    assert root.find("numatune/memory").get("nodeset") == "1"  # type: ignore[union-attr]
    # pcifleet up's host: 64 CPUs, 32 per cell; cell 1 holds 32-63
    assert {v.get("cpuset") for v in root.iterfind("cputune/vcpupin")} == {"32-63"}
    assert len(root.findall("cputune/vcpupin")) == 4
    osc_ok(cli, "server", "delete", "--wait", "pinned")


def test_a_trusted_port_lands_on_a_trusted_vf_and_keeps_its_profile(
    numa_cloud: tuple[Cloud, OscRunner],
) -> None:
    cloud, cli = numa_cloud
    flavor(cli, "plain")
    p = port(cli, "trusted-p", "physnet1", "--binding-profile", "trusted=true",
             "--binding-profile", "owner=netops")  # fmt: skip
    server = boot(cli, "trusted", "plain", p)
    assert server["status"] == "ACTIVE", server.get("fault")
    profile = osc_json(cli, "port", "show", p)["binding_profile"]
    assert profile["trusted"] == "true" and profile["owner"] == "netops"
    # the trusted pool is ens1f0's VFs 6-7: 0000:3b:02.6 and 0000:3b:02.7
    assert profile["pci_slot"] in ("0000:3b:02.6", "0000:3b:02.7")
    assert profile["physical_network"] == "physnet1"
    iface = domain(cloud, server).find("devices/interface[@type='hostdev']")
    assert iface is not None and iface.get("trustGuestRxFilters") == "yes"
    osc_ok(cli, "server", "delete", "--wait", "trusted")
    assert osc_json(cli, "port", "show", p)["binding_profile"] == {
        "trusted": "true",
        "owner": "netops",
    }


def test_distinct_pf_ports_land_on_two_pfs_or_the_server_says_why(
    numa_cloud: tuple[Cloud, OscRunner],
) -> None:
    _, cli = numa_cloud
    flavor(cli, "bond")
    a, b = port(cli, "bond-a", "physnet1"), port(cli, "bond-b", "physnet1")
    server = boot(cli, "bond", "bond", a, b, hint="pcifleet:distinct_pf=true")
    assert server["status"] == "ACTIVE", server.get("fault")
    slots = {osc_json(cli, "port", "show", p)["binding_profile"]["pci_slot"][:7] for p in (a, b)}
    assert slots == {"0000:3b", "0000:5f"}  # one VF of each physnet1 PF
    osc_ok(cli, "server", "delete", "--wait", "bond")

    c = port(cli, "bond-c", "physnet1")
    server = boot(cli, "bond3", "bond", a, b, c, hint="pcifleet:distinct_pf=true")
    assert server["status"] == "ERROR"
    assert "distinct_pf" in str(server["fault"])
    osc_ok(cli, "server", "delete", "--wait", "bond3")
