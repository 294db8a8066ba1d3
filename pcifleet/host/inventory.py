"""What discovery returns: the devices of one host and what went wrong reading them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pcifleet.host.devname import check_devname
from pcifleet.pci.address import PciAddress
from pcifleet.pci.address_spec import GlobAddressSpec
from pcifleet.pci.device import PciDevice
from pcifleet.pci.errors import InvalidDeviceSpec, InvalidPciAddress


@dataclass(frozen=True)
class Inventory:
    """The PCI devices of one host, sorted by address, plus per-device warnings.

    ``source`` says where the facts came from (``sysfs:/sys``, ``libvirt:qemu:///system``).
    A device that could not be read completely is absent and named in ``warnings``.
    """

    devices: list[PciDevice]
    warnings: list[str] = field(default_factory=list)
    source: str = ""

    def by_address(self) -> dict[PciAddress, PciDevice]:
        return {d.address: d for d in self.devices}

    def parent_of(self, device: PciDevice) -> PciDevice | None:
        """The PF of a VF when the inventory holds it."""
        if device.parent_addr is None:
            return None
        return self.by_address().get(device.parent_addr)

    def children_of(self, device: PciDevice) -> list[PciDevice]:
        """The VFs of a PF, in address order."""
        return [d for d in self.devices if d.parent_addr == device.address]

    def find(self, key: str) -> PciDevice | None:
        """The device with this PCI address, or else the one whose netdev has this name.

        An address may be written in every form a device spec's ``address``
        takes without wildcards: ``0000:02:10.2``, ``02:10.2`` (lspci's short
        form, any domain), ``2:10.2``, upper case. Raises InvalidDeviceSpec for
        a key that is neither an address nor a safe netdev name, or an address
        that names several devices (the same bus:slot.function in two domains).
        """
        try:
            return self.by_address().get(PciAddress.parse(key))
        except InvalidPciAddress:
            pass
        try:
            pattern = GlobAddressSpec.parse(key) if ":" in key else None
        except InvalidDeviceSpec as exc:
            raise InvalidDeviceSpec(f"not a PCI address ({exc})") from None
        if pattern is None or None in (pattern.bus, pattern.slot, pattern.function):
            try:
                check_devname(key)
            except InvalidDeviceSpec as exc:
                raise InvalidDeviceSpec(f"not a PCI address, and {exc}") from None
            return next((d for d in self.devices if d.ifname == key), None)
        found = [d for d in self.devices if pattern.match(d.address) is None]
        if len(found) > 1:
            names = ", ".join(str(d.address) for d in found[:5])
            raise InvalidDeviceSpec(f"{key} names {len(found)} devices ({names}): give the domain")
        return found[0] if found else None


def make_inventory(devices: Iterable[PciDevice], warnings: list[str], source: str) -> Inventory:
    """Sort, and warn about VFs whose PF is missing (it vanished or could not be read)."""
    ordered = sorted(devices, key=lambda d: d.address)
    present = {d.address for d in ordered}
    for dev in ordered:
        if dev.parent_addr is not None and dev.parent_addr not in present:
            warnings.append(f"{dev.address}: its PF {dev.parent_addr} is not in the inventory")
    return Inventory(devices=ordered, warnings=warnings, source=source)
