"""The ``build`` task: everything an agent needs to define and start a server's
domain, resolved by the controller so the agent never reads the store.

Wire shape (a JSON object; unknown keys are ignored, so a newer controller may
add some)::

    {"instance": {"uuid", "name", "vcpus", "memory_mb", "image_id", "numa_cells",
                  "cell_cpus", "root_gb", "project_id", "flavor_name"},
     "image": {"id", "disk_format", "size", "checksum", "os_hash_algo",
               "os_hash_value", "file"} or null,
     "ports": [<TaskPort>...],
     "devices": [{"address", "vendor_id", "product_id", "dev_type", "parent_addr",
                  "request_id", "for_port"}...],
     "start": false (only when false),
     "disk": {"migration", "sha256", "size"} (only on a cold move's destination)}

``devices`` are what the controller claimed for the server, each with the PCI
request it satisfies; a device whose request is an SR-IOV port's
``pci_request_id`` is that port's VF (``for_port``), the others are flavor
alias devices given to the guest whole.

``numa_cells`` are the host NUMA nodes the scheduler placed the server's
guest cells on (null: no NUMA placement); ``cell_cpus``, when the flavor asks
for dedicated CPUs, the host CPUs of each of those nodes (``"0-15"``), which
the guest cell's vCPUs are pinned to.

``root_gb`` is the flavor's root disk in GB (Nova's ``disk``): the size of the
server's own disk, 0 (or absent, as from an older controller) meaning the
image's virtual size. ``project_id`` and ``flavor_name`` go into the domain's
pcifleet metadata. ``checksum`` is Glance's md5 of the image file and
``os_hash_value`` its ``os_hash_algo`` (sha512) digest; the agent checks both
when present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pcifleet.pci.address import PciAddress
from pcifleet.pci.device import DevType
from pcifleet.pci.ranges import format_index_list, parse_index_list
from pcifleet.virt import validate as v
from pcifleet.virt.errors import InvalidTask
from pcifleet.virt.model import GuestNumaCell
from pcifleet.virt.tasks import fields as f
from pcifleet.virt.tasks.moves import MoveDisk
from pcifleet.virt.tasks.ports import TaskPort

# Host NUMA node ids: the kernel's MAX_NUMNODES is at most 1024.
NUMA_NODE_MAX = 1023
HOST_CPU_MAX = 8191
# An image's size in bytes, as glance stores it (a signed 64-bit column).
IMAGE_SIZE_MAX = 2**63 - 1
# A flavor's root disk in GB: Nova caps flavor sizes at a signed 32-bit int; a
# disk beyond 64 TiB on one host is a typo or an attack, not a server.
ROOT_GB_MAX = 65536
# Glance's os_hash_algo values (hashlib names) the agent can check.
HASH_ALGOS = ("sha512", "sha384", "sha256", "sha1", "md5")


class _InvalidCpus(ValueError):
    """A cell_cpus entry that is not a CPU list (turned into InvalidTask)."""


def _cpus(value: Any, field: str) -> frozenset[int]:
    try:
        cpus = parse_index_list(value, field, HOST_CPU_MAX, _InvalidCpus)
    except _InvalidCpus as exc:
        raise InvalidTask(field, str(exc).removeprefix(field).lstrip(" :")) from None
    if not cpus:
        raise InvalidTask(field, "names no CPU")
    return cpus


@dataclass(frozen=True, slots=True)
class TaskInstance:
    """The server and its flavor's size; 0 or null vcpus/memory: the agent's default."""

    uuid: str
    name: str | None = None
    vcpus: int | None = None
    memory_mb: int | None = None
    image_id: str | None = None
    numa_cells: tuple[int, ...] | None = None
    cell_cpus: tuple[frozenset[int], ...] | None = None
    root_gb: int | None = None
    project_id: str | None = None
    flavor_name: str | None = None

    def guest_numa_cells(self, vcpus: int, memory_mb: int) -> list[GuestNumaCell]:
        """The guest's cells on ``numa_cells``: vCPUs and memory split evenly
        (the last cell takes what does not divide), pinned where ``cell_cpus``
        says. None of them when the server has no NUMA placement."""
        if not self.numa_cells:
            return []
        n = len(self.numa_cells)
        if vcpus < n:
            raise InvalidTask("instance.numa_cells", f"{n} cells for {vcpus} vCPU(s)")
        per_cpu, per_mem = vcpus // n, memory_mb // n
        cells = []
        for i, node in enumerate(self.numa_cells):
            last = i == n - 1
            cpus = range(i * per_cpu, vcpus if last else (i + 1) * per_cpu)
            memory = memory_mb - per_mem * (n - 1) if last else per_mem
            pin = None if self.cell_cpus is None else self.cell_cpus[i]
            cells.append(GuestNumaCell(node, tuple(cpus), memory, pin))
        return cells

    def to_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "name": self.name,
            "vcpus": self.vcpus,
            "memory_mb": self.memory_mb,
            "image_id": self.image_id,
            "numa_cells": None if self.numa_cells is None else list(self.numa_cells),
            "root_gb": self.root_gb,
            "project_id": self.project_id,
            "flavor_name": self.flavor_name,
            # only when pinned, so the shape of every other build stays as it was
            **(
                {}
                if self.cell_cpus is None
                else {"cell_cpus": [format_index_list(c) for c in self.cell_cpus]}
            ),
        }

    @classmethod
    def from_dict(cls, data: Any, field: str = "instance") -> TaskInstance:
        data = f.mapping(data, field)
        image_id = data.get("image_id")
        cells = data.get("numa_cells")
        cell_cpus = data.get("cell_cpus")
        pins = (
            None
            if cell_cpus is None
            else tuple(
                _cpus(c, f"{field}.cell_cpus[{i}]")
                for i, c in enumerate(f.items(cell_cpus, f.at(field, "cell_cpus")))
            )
        )
        if pins is not None and (cells is None or len(pins) != len(cells)):
            raise InvalidTask(f.at(field, "cell_cpus"), "needs one CPU list per numa_cells entry")
        return cls(
            uuid=f.uuid(f.required(data, "uuid", field), f.at(field, "uuid")),
            name=f.optional_text(data.get("name"), f.at(field, "name")),
            vcpus=f.optional_integer(data.get("vcpus"), f.at(field, "vcpus"), 0, v.VCPUS_MAX),
            memory_mb=f.optional_integer(
                data.get("memory_mb"), f.at(field, "memory_mb"), 0, v.MEMORY_MB_MAX
            ),
            image_id=None if image_id is None else f.identifier(image_id, f.at(field, "image_id")),
            numa_cells=None
            if cells is None
            else tuple(
                f.integer(c, f"{field}.numa_cells[{i}]", 0, NUMA_NODE_MAX)
                for i, c in enumerate(f.items(cells, f.at(field, "numa_cells")))
            ),
            cell_cpus=pins,
            root_gb=f.optional_integer(data.get("root_gb"), f.at(field, "root_gb"), 0, ROOT_GB_MAX),
            project_id=f.optional_text(data.get("project_id"), f.at(field, "project_id"), 64),
            flavor_name=f.optional_text(data.get("flavor_name"), f.at(field, "flavor_name")),
        )


@dataclass(frozen=True, slots=True)
class TaskImage:
    """The server's image; ``file`` is the controller path the agent downloads it from."""

    id: str
    file: str
    disk_format: str | None = None
    size: int | None = None
    checksum: str | None = None
    os_hash_algo: str | None = None
    os_hash_value: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "disk_format": self.disk_format,
            "size": self.size,
            "checksum": self.checksum,
            "os_hash_algo": self.os_hash_algo,
            "os_hash_value": self.os_hash_value,
            "file": self.file,
        }

    @classmethod
    def from_dict(cls, data: Any, field: str = "image") -> TaskImage:
        data = f.mapping(data, field)
        path = f.printable(f.required(data, "file", field), f.at(field, "file"), 1024)
        if not path.startswith("/"):
            raise InvalidTask(
                f.at(field, "file"), f"{f.show(path)} must be a path on the controller"
            )
        disk_format = data.get("disk_format")
        algo = data.get("os_hash_algo")
        return cls(
            id=f.identifier(f.required(data, "id", field), f.at(field, "id")),
            file=path,
            disk_format=None
            if disk_format is None
            else f.identifier(disk_format, f.at(field, "disk_format")),
            size=f.optional_integer(data.get("size"), f.at(field, "size"), 0, IMAGE_SIZE_MAX),
            checksum=_digest(data.get("checksum"), f.at(field, "checksum")),
            os_hash_algo=None
            if algo is None
            else f.choice(algo, f.at(field, "os_hash_algo"), HASH_ALGOS),
            os_hash_value=_digest(data.get("os_hash_value"), f.at(field, "os_hash_value")),
        )


def _digest(value: Any, field: str) -> str | None:
    """A hex digest (lower-cased), or None."""
    found = f.optional_text(value, field, 128)
    if found is None:
        return None
    if not found or any(c not in "0123456789abcdefABCDEF" for c in found):
        raise InvalidTask(field, f"{f.show(found)} is not a hex digest")
    return found.lower()


@dataclass(frozen=True, slots=True)
class TaskDevice:
    """A device claimed for the server, with the PCI request it satisfies."""

    address: PciAddress
    request_id: str
    vendor_id: str | None = None
    product_id: str | None = None
    dev_type: DevType | None = None
    parent_addr: PciAddress | None = None
    for_port: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "vendor_id": self.vendor_id,
            "product_id": self.product_id,
            "dev_type": None if self.dev_type is None else self.dev_type.value,
            "parent_addr": None if self.parent_addr is None else str(self.parent_addr),
            "request_id": self.request_id,
            "for_port": self.for_port,
        }

    @classmethod
    def from_dict(cls, data: Any, field: str = "device") -> TaskDevice:
        data = f.mapping(data, field)
        dev_type = data.get("dev_type")
        for_port = data.get("for_port")
        return cls(
            address=f.address(f.required(data, "address", field), f.at(field, "address")),
            request_id=f.text(f.required(data, "request_id", field), f.at(field, "request_id")),
            vendor_id=f.hex_id(data.get("vendor_id"), f.at(field, "vendor_id")),
            product_id=f.hex_id(data.get("product_id"), f.at(field, "product_id")),
            dev_type=None
            if dev_type is None
            else DevType(f.choice(dev_type, f.at(field, "dev_type"), tuple(DevType))),
            parent_addr=f.optional_address(data.get("parent_addr"), f.at(field, "parent_addr")),
            for_port=False if for_port is None else f.boolean(for_port, f.at(field, "for_port")),
        )


@dataclass(frozen=True, slots=True)
class BuildTask:
    """Define and start a server's domain with its ports and devices.

    ``start`` False defines the domain and leaves it shut off: a stopped server
    that moves stays stopped on its new host (as Nova's finish_migration with
    ``power_on`` False). Written only when False, so a boot's payload is as
    it always was.

    ``disk``, on a cold move's destination: the overlay the source handed
    over, which becomes the server's disk (rebased onto this host's copy of
    the image) instead of a fresh one. Written only when set."""

    instance: TaskInstance
    image: TaskImage | None = None
    ports: tuple[TaskPort, ...] = ()
    devices: tuple[TaskDevice, ...] = ()
    start: bool = True
    disk: MoveDisk | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "image": None if self.image is None else self.image.to_dict(),
            "instance": self.instance.to_dict(),
            "ports": [p.to_dict() for p in self.ports],
            "devices": [d.to_dict() for d in self.devices],
        }
        if not self.start:
            data["start"] = False
        if self.disk is not None:
            data["disk"] = self.disk.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any) -> BuildTask:
        data = f.mapping(data, "")
        image = data.get("image")
        disk = data.get("disk")
        return cls(
            instance=TaskInstance.from_dict(f.required(data, "instance", "")),
            image=None if image is None else TaskImage.from_dict(image),
            ports=tuple(
                TaskPort.from_dict(p, f"ports[{i}]")
                for i, p in enumerate(f.items(data.get("ports"), "ports"))
            ),
            devices=tuple(
                TaskDevice.from_dict(d, f"devices[{i}]")
                for i, d in enumerate(f.items(data.get("devices"), "devices"))
            ),
            start=f.boolean(data.get("start", True), "start"),
            disk=None if disk is None else MoveDisk.from_dict(disk),
        )
