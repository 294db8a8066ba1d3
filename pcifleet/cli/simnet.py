"""Real netdevs for the VFs of simulated hosts on a real libvirtd.

With ``pcifleet up --virt libvirt`` a simulated host's VFs exist only in its
generated sysfs tree, yet a ``macvtap`` port needs its VF's netdev to exist for
real: libvirt puts a macvtap on it and sets its MAC to the port's, as on a VF.
Each VF netdev is therefore made a real veth interface (its peer, the name with
an ``x`` after it, stays unused).

The kernel has one interface namespace for every simulated host of every data
directory on the machine, so the names are made unique: ``<tag>h<host>p<pf>v<vf>``,
with a tag of four hex digits kept per data directory (``hosts/sim-net-tag``),
e.g. ``3fa1h2p0v7`` is VF 7 of the first PF of compute-2. The PFs keep the
layout's names (``ens1f0``), so device specs match as written; they need no
real netdev.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from pcifleet.pci import DevType, PciAddress, PciDevice

TAG_FILE = "sim-net-tag"
PEER_SUFFIX = "x"
IFNAME_MAX = 15
IP_TIMEOUT = 120.0


class SimNetError(RuntimeError):
    """The veth interfaces cannot be made or removed; the message says why."""


def sim_tag(hosts_dir: Path) -> str:
    """This data directory's tag in its VF netdev names (made once, then kept)."""
    path = hosts_dir / TAG_FILE
    try:
        tag = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        tag = ""
    if len(tag) == 4 and all(c in "0123456789abcdef" for c in tag):
        return tag
    tag = secrets.token_hex(2)
    hosts_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(tag + "\n", encoding="utf-8")
    return tag


def vf_netdev_name(tag: str, host: int, pf: int, vf: int) -> str:
    """The unique name of VF ``vf`` of the ``pf``-th PF of simulated host ``host``."""
    name = f"{tag}h{host}p{pf}v{vf}"
    if len(name) + len(PEER_SUFFIX) > IFNAME_MAX:
        raise SimNetError(
            f"VF netdev name {name} would leave no room for its veth peer within the "
            f"kernel's {IFNAME_MAX} characters (too many hosts, PFs or VFs)"
        )
    return name


def with_unique_vf_netdevs(devices: Sequence[PciDevice], tag: str, host: int) -> list[PciDevice]:
    """``devices`` with every VF netdev renamed by ``vf_netdev_name``; PFs and
    devices without a netdev are kept as they are."""
    pf_index: dict[PciAddress, int] = {}
    vf_count: dict[PciAddress, int] = {}
    for dev in devices:
        if dev.dev_type is DevType.PF:
            pf_index.setdefault(dev.address, len(pf_index))
    out = []
    for dev in devices:
        parent = dev.parent_addr
        if dev.dev_type is DevType.VF and dev.ifname is not None and parent in pf_index:
            index = vf_count.get(parent, 0)
            vf_count[parent] = index + 1
            name = vf_netdev_name(tag, host, pf_index[parent], index)
            dev = dataclasses.replace(dev, ifname=name)
        out.append(dev)
    return out


def with_host_macs(devices: Sequence[PciDevice], host: int) -> list[PciDevice]:
    """``devices`` with the fourth octet of every netdev MAC set to ``host``: real
    NICs' MACs are unique, and a direct-physical port takes its PF's, so the
    simulated hosts' copies of one layout must differ too."""
    out = []
    for dev in devices:
        mac = dev.extra.get("mac")
        if mac and len(mac.split(":")) == 6:
            octets = mac.split(":")
            octets[3] = f"{host & 0xFF:02x}"
            dev = dataclasses.replace(dev, extra={**dev.extra, "mac": ":".join(octets)})
        out.append(dev)
    return out


def vf_netdevs(devices: Iterable[PciDevice]) -> list[str]:
    """The netdev names of the VFs among ``devices``."""
    return [d.ifname for d in devices if d.dev_type is DevType.VF and d.ifname is not None]


def _ip(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = ["ip", *args]
    try:
        return subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=IP_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SimNetError(f"{' '.join(command)}: {exc}") from None


def existing_links() -> set[str]:
    """The names of this network namespace's interfaces."""
    done = _ip("-j", "link", "show")
    if done.returncode != 0:
        raise SimNetError(f"ip -j link show: {done.stderr.strip() or done.returncode}")
    try:
        return {str(link["ifname"]) for link in json.loads(done.stdout or "[]")}
    except (ValueError, KeyError, TypeError):
        raise SimNetError(f"cannot read `ip -j link show`: {done.stdout[:200]!r}") from None


def ensure_veths(names: Iterable[str]) -> int:
    """Make each named veth (and its peer) and bring both up; existing ones are
    left as they are. Needs root (CAP_NET_ADMIN). Returns how many were made."""
    have = existing_links()
    missing = [n for n in names if n not in have]
    if not missing:
        return 0
    lines = []
    for name in missing:
        peer = name + PEER_SUFFIX
        lines.append(f"link add name {name} type veth peer name {peer}")
        lines.append(f"link set dev {name} up")
        lines.append(f"link set dev {peer} up")
    done = _ip("-batch", "-", stdin="\n".join(lines) + "\n")
    if done.returncode != 0:
        hint = ""
        if "Operation not permitted" in done.stderr:
            hint = " (making network interfaces needs root, or CAP_NET_ADMIN)"
        raise SimNetError(
            f"cannot make the VF netdevs as veth interfaces{hint}: "
            f"{done.stderr.strip().splitlines()[0] if done.stderr.strip() else done.returncode}"
        )
    return len(missing)


def remove_veths(names: Iterable[str]) -> int:
    """Remove each named veth that exists (its peer goes with it); how many went."""
    have = existing_links()
    present = [n for n in names if n in have]
    if not present:
        return 0
    done = _ip("-force", "-batch", "-", stdin="".join(f"link del dev {n}\n" for n in present))
    if done.returncode != 0 and set(present) & existing_links():
        raise SimNetError(f"cannot remove veth interfaces: {done.stderr.strip()[:300]}")
    return len(present)
