"""Small device builders for the PCI model tests."""

from pcifleet.pci import DevType, PciDevice


def pf(
    address: str, ifname: str | None = None, numa: int | None = 0, product: str = "1572"
) -> PciDevice:
    return PciDevice(
        address=address,
        vendor_id="8086",
        product_id=product,
        dev_type=DevType.PF,
        numa_node=numa,
        ifname=ifname,
    )


def vf(address: str, parent: str, ifname: str | None = None, numa: int | None = 0) -> PciDevice:
    return PciDevice(
        address=address,
        vendor_id="8086",
        product_id="154c",
        dev_type=DevType.VF,
        parent_addr=parent,
        numa_node=numa,
        ifname=ifname,
    )


def gpu(address: str, numa: int | None = 0) -> PciDevice:
    return PciDevice(address=address, vendor_id="10de", product_id="1db4", numa_node=numa)
