"""Device states and the in-memory tracker of one host's devices.

The tracker is the reference implementation of claim, allocate and free with the
PF/VF dependency: the store executes the same plan with guarded SQL. Every
operation works out all its changes first and applies them only when all are
legal, so a failure changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pcifleet.pci.address import PciAddress
from pcifleet.pci.device import DevType, PciDevice
from pcifleet.pci.errors import InvalidDeviceTransition
from pcifleet.pci.pools import PciPools, Tags, build_pools, pool_id_of
from pcifleet.pci.request import PciRequest
from pcifleet.pci.status import IN_USE, DeviceStatus

S = DeviceStatus
ALLOWED: dict[DeviceStatus, frozenset[DeviceStatus]] = {
    S.AVAILABLE: frozenset({S.CLAIMED, S.UNAVAILABLE, S.REMOVED}),
    S.CLAIMED: frozenset({S.ALLOCATED, S.AVAILABLE}),
    S.ALLOCATED: frozenset({S.AVAILABLE}),
    S.UNAVAILABLE: frozenset({S.AVAILABLE, S.REMOVED}),
    S.REMOVED: frozenset({S.AVAILABLE}),
}


def check_transition(address: object, old: DeviceStatus, new: DeviceStatus) -> None:
    if new not in ALLOWED[old]:
        raise InvalidDeviceTransition(f"device {address}: {old} -> {new} is not allowed")


@dataclass(slots=True)
class DeviceRecord:
    """A device, its tags (None: no spec matched it), and its state."""

    device: PciDevice
    tags: dict[str, str | None] | None
    status: DeviceStatus = DeviceStatus.AVAILABLE
    instance_uuid: str | None = None
    request_id: str | None = None

    @property
    def pool_id(self) -> str | None:
        return None if self.tags is None else pool_id_of(self.device, self.tags)


@dataclass(frozen=True, slots=True)
class Change:
    address: PciAddress
    old: DeviceStatus
    new: DeviceStatus
    instance_uuid: str | None
    request_id: str | None


class DeviceTracker:
    """All devices of one host and their states."""

    def __init__(self, records: Iterable[DeviceRecord]) -> None:
        self.records: dict[PciAddress, DeviceRecord] = {r.device.address: r for r in records}
        self._children: dict[PciAddress, list[DeviceRecord]] = {}
        for r in self.records.values():
            if r.device.parent_addr is not None:
                self._children.setdefault(r.device.parent_addr, []).append(r)

    @classmethod
    def from_classified(cls, items: Iterable[tuple[PciDevice, Tags | None]]) -> DeviceTracker:
        return cls(DeviceRecord(d, None if t is None else dict(t)) for d, t in items)

    def pools(self) -> PciPools:
        return build_pools(self.records.values())

    def _commit(self, changes: Sequence[Change]) -> list[Change]:
        for c in changes:
            check_transition(c.address, c.old, c.new)
        for c in changes:
            r = self.records[c.address]
            r.status, r.instance_uuid, r.request_id = c.new, c.instance_uuid, c.request_id
        return list(changes)

    def claim(
        self,
        instance_uuid: str,
        requests: Sequence[PciRequest],
        numa_cells: Iterable[int] | None = None,
    ) -> list[Change]:
        """Claim devices meeting all requests; raises PciRequestsUnsatisfiable otherwise."""
        takes = self.pools().apply(requests, numa_cells)
        by_pool: dict[str, list[DeviceRecord]] = {}
        for r in sorted(self.records.values(), key=lambda r: r.device.address):
            if r.status is S.AVAILABLE and r.tags is not None:
                by_pool.setdefault(pool_id_of(r.device, r.tags), []).append(r)
        changes: list[Change] = []
        blocked: set[PciAddress] = set()
        for take in takes:
            free = by_pool.get(take.pool.pool_id, [])
            chosen, by_pool[take.pool.pool_id] = free[: take.count], free[take.count :]
            for r in chosen:
                changes.append(
                    Change(r.device.address, r.status, S.CLAIMED, instance_uuid, take.request_id)
                )
                blocked.update(self._dependents(r.device))
        claimed = {c.address for c in changes}
        for address in sorted(blocked - claimed):
            r = self.records[address]
            if r.status is S.AVAILABLE:
                changes.append(Change(address, r.status, S.UNAVAILABLE, None, None))
        return self._commit(changes)

    def _dependents(self, device: PciDevice) -> list[PciAddress]:
        """Devices a claim of ``device`` blocks: its PF, or all VFs of a PF."""
        if device.dev_type is DevType.VF and device.parent_addr in self.records:
            return [device.parent_addr]
        if device.dev_type is DevType.PF:
            return [c.device.address for c in self._children.get(device.address, [])]
        return []

    def allocate(self, instance_uuid: str) -> list[Change]:
        return self._commit(
            [
                Change(r.device.address, r.status, S.ALLOCATED, instance_uuid, r.request_id)
                for r in self.records.values()
                if r.instance_uuid == instance_uuid and r.status is S.CLAIMED
            ]
        )

    def free(self, instance_uuid: str) -> list[Change]:
        """Release the instance's devices; unblock their PF or VFs that nothing else holds."""
        mine = [
            r
            for r in self.records.values()
            if r.instance_uuid == instance_uuid and r.status in IN_USE
        ]
        changes = [Change(r.device.address, r.status, S.AVAILABLE, None, None) for r in mine]
        freed = {r.device.address for r in mine}

        def busy(r: DeviceRecord) -> bool:
            return r.status in IN_USE and r.device.address not in freed

        for r in mine:
            dev = r.device
            if dev.dev_type is DevType.VF and dev.parent_addr in self.records:
                pf = self.records[dev.parent_addr]
                siblings = self._children.get(dev.parent_addr, [])
                if pf.status is S.UNAVAILABLE and not any(busy(s) for s in siblings):
                    changes.append(Change(pf.device.address, pf.status, S.AVAILABLE, None, None))
            elif dev.dev_type is DevType.PF:
                for vf in self._children.get(dev.address, []):
                    if vf.status is S.UNAVAILABLE:
                        changes.append(
                            Change(vf.device.address, vf.status, S.AVAILABLE, None, None)
                        )
        # Several VFs of one PF may free it: keep one change per address.
        unique = {c.address: c for c in changes}
        return self._commit(list(unique.values()))

    def remove(self, address: PciAddress) -> list[Change]:
        r = self.records[address]
        return self._commit([Change(address, r.status, S.REMOVED, None, None)])
