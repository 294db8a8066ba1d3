"""The real ``ip`` path of host networking, inside a network namespace made for
each test (the machine's own interfaces are never touched): the bridge, its
uplink, idempotence, and the errors an operator sees.

The uplink is one end of a veth pair: the dummy and 8021q modules may be
missing in a container, veth and bridge rarely are. Whether the kernel makes
VLAN interfaces is probed, and the VLAN test checks whichever answer it gives.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from pcifleet.agent.bridges import BridgeError, LinuxBridges, parse_mappings
from pcifleet.virt.tasks import BridgeBinding
from tests.system import need_command, unavailable


def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with veth ``eth1`` (peer ``peer1``); removed after."""
    need_command("ip", "iproute2")
    if os.geteuid() != 0:
        unavailable("making a network namespace needs root")
    name = f"pcifleet-test-{uuid.uuid4().hex[:8]}"
    made = _run("ip", "netns", "add", name, check=False)
    if made.returncode != 0:
        unavailable(f"cannot make a network namespace: {made.stderr.strip()}")
    try:
        _run("ip", "netns", "exec", name, "ip", "link", "add", "eth1", "type", "veth",
             "peer", "name", "peer1")  # fmt: skip
        yield name
    finally:
        _run("ip", "netns", "del", name, check=False)


def link(ns: str, name: str) -> dict[str, object] | None:
    done = _run("ip", "netns", "exec", ns, "ip", "-j", "-d", "link", "show", "dev", name,
                check=False)  # fmt: skip
    return json.loads(done.stdout)[0] if done.returncode == 0 else None


def bridges(ns: str, **mappings: str) -> LinuxBridges:
    return LinuxBridges(mappings, command_prefix=["ip", "netns", "exec", ns])


def vlan_supported(ns: str) -> bool:
    probe = _run("ip", "netns", "exec", ns, "ip", "link", "add", "link", "peer1", "name",
                 "probe.7", "type", "vlan", "id", "7", check=False)  # fmt: skip
    return probe.returncode == 0


def test_a_flat_network_bridges_the_mapped_interface_and_a_second_plug_reuses_it(
    netns: str,
) -> None:
    plug = bridges(netns, physnet1="eth1")
    flat = BridgeBinding("brqflat", "flat", "physnet1")
    plug.plug(flat)
    plug.plug(flat)  # a second server on the network
    bridge = link(netns, "brqflat")
    assert bridge is not None and "UP" in bridge["flags"]  # type: ignore[operator]
    uplink = link(netns, "eth1")
    assert uplink is not None and uplink.get("master") == "brqflat"
    names = _run("ip", "netns", "exec", netns, "ip", "-j", "link", "show").stdout
    assert [n["ifname"] for n in json.loads(names)].count("brqflat") == 1


def test_a_vlan_network_bridges_a_vlan_subinterface(netns: str) -> None:
    plug = bridges(netns, physnet1="eth1")
    vlan = BridgeBinding("brqvlan", "vlan", "physnet1", 300)
    if not vlan_supported(netns):
        # No 8021q in this kernel: the build fails naming the subinterface.
        with pytest.raises(BridgeError, match=r"cannot add eth1\.300"):
            plug.plug(vlan)
        assert link(netns, "brqvlan") is not None
        return
    plug.plug(vlan)
    plug.plug(vlan)
    sub = link(netns, "eth1.300")
    assert sub is not None and sub.get("master") == "brqvlan"
    assert sub["linkinfo"]["info_data"]["id"] == 300  # type: ignore[index]
    assert link(netns, "eth1") is not None and link(netns, "eth1").get("master") is None  # type: ignore[union-attr]


def test_an_unmapped_physical_network_gives_a_bridge_without_uplink_and_warns_once(
    netns: str, caplog: pytest.LogCaptureFixture
) -> None:
    plug = bridges(netns)
    with caplog.at_level(logging.WARNING, logger="pcifleet.agent.bridges"):
        plug.plug(BridgeBinding("brqa", "flat", "physnet9"))
        plug.plug(BridgeBinding("brqb", "flat", "physnet9"))
    assert link(netns, "brqa") is not None and link(netns, "brqb") is not None
    assert len([r for r in caplog.records if "physnet9" in r.getMessage()]) == 1


def test_a_local_network_has_a_bridge_only(netns: str) -> None:
    bridges(netns, physnet1="eth1").plug(BridgeBinding("brqlocal"))
    assert link(netns, "brqlocal") is not None
    assert link(netns, "eth1").get("master") is None  # type: ignore[union-attr]


def test_a_mapped_interface_that_is_missing_fails(netns: str) -> None:
    with pytest.raises(BridgeError, match="interface eth7 of physical network physnet1"):
        bridges(netns, physnet1="eth7").plug(BridgeBinding("brqx", "flat", "physnet1"))


def test_an_interface_in_another_bridge_is_not_taken(netns: str) -> None:
    plug = bridges(netns, physnet1="eth1")
    plug.plug(BridgeBinding("brqfirst", "flat", "physnet1"))
    with pytest.raises(BridgeError, match="eth1 is already a port of brqfirst"):
        plug.plug(BridgeBinding("brqsecond", "flat", "physnet1"))
    assert link(netns, "eth1").get("master") == "brqfirst"  # type: ignore[union-attr]


def test_a_vlan_interface_name_too_long_is_refused(netns: str) -> None:
    _run("ip", "netns", "exec", netns, "ip", "link", "add", "enp175s0f1np1", "type", "veth",
         "peer", "name", "peer2")  # fmt: skip
    plug = bridges(netns, physnet1="enp175s0f1np1")
    with pytest.raises(BridgeError, match=r"enp175s0f1np1\.3000 is longer"):
        plug.plug(BridgeBinding("brqlong", "vlan", "physnet1", 3000))


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (["physnet1"], "'physnet1' is not physical_network:interface"),
        (["physnet1:"], "is not physical_network:interface"),
        (["physnet1:eth1", "physnet1:eth2"], "physnet1 is mapped twice"),
        (["physnet1:bad/name"], "interface of physnet1"),
    ],
)
def test_bad_mappings_are_named(entries: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mappings(entries)


def test_mappings_read_like_neutrons() -> None:
    assert parse_mappings(["physnet1:eth1", " physnet2 : bond0.5 "]) == {
        "physnet1": "eth1",
        "physnet2": "bond0.5",
    }
