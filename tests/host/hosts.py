"""Small generated hosts shared by the host-layer tests."""

from __future__ import annotations

from pcifleet.host.fakesys import FakeDevice, FakeNetdev

PF = "0000:3b:00.0"


def pf_with_vfs(n: int = 3, totalvfs: int = 8) -> list[FakeDevice]:
    """An X710 port ``PF`` (netdev ens1f0, NUMA 0) with ``n`` iavf VFs at 0000:3b:02.x."""
    pf = FakeDevice(
        PF,
        "8086",
        "1572",
        numa_node=0,
        driver="i40e",
        totalvfs=totalvfs,
        netdevs=[FakeNetdev("ens1f0", mac="3c:fd:fe:00:3b:00")],
    )
    vfs = [
        FakeDevice(
            f"0000:3b:02.{i}",
            "8086",
            "154c",
            numa_node=0,
            driver="iavf",
            physfn=PF,
            netdevs=[FakeNetdev(f"ens1f0v{i}", mac=f"02:00:00:00:00:0{i}")],
        )
        for i in range(n)
    ]
    return [pf, *vfs]
