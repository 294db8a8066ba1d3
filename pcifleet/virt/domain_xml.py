"""A whole libvirt domain for a server: machine, image disk, console, devices.

A server's domain carries pcifleet's mark in ``<metadata>`` (see ``marker``) and,
when asked, logs its serial console to a file: ``<log file=... append='on'/>``
under the pty serial, so the console stays interactive (``virsh console``) while
every byte is also kept for ``console_output``.

Devices are written in the order libvirt itself prints them (disk, interfaces,
serial, console, hostdevs), so a domain read back from libvirt lines up with ours.
The ``<interface>`` elements follow the server's port order, bridge and SR-IOV
mixed, so the domain lists its NICs as the server lists its ports. A
direct-physical port is a ``<hostdev>`` (libvirt has no interface for a whole
PF) and comes after the flavor's devices, in port order among the ports' PFs.
The guest's PCI slots are libvirt's choice, not this order: its qemu driver
gives slots to ``<interface>`` NICs first but to ``type='hostdev'`` ones with
the hostdevs (qemuDomainAssignDevicePCISlots), so a guest may enumerate its
VFs after its virtio NICs. Pinning port order in the guest needs explicit
``<address type='pci'>`` per NIC, which pcifleet does not write yet.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from pcifleet.pci.ranges import format_index_list
from pcifleet.virt.interface_xml import hostdev_element, interface_element
from pcifleet.virt.marker import marker_element
from pcifleet.virt.model import (
    DomainSpec,
    DomainType,
    GuestNumaCell,
    HostdevSpec,
    InterfaceSpec,
    domain_name_for,
)
from pcifleet.virt.xmlutil import Element, sub, to_string

# PCI devices libvirt adds to a q35 domain by itself (USB controller, memory
# balloon), plus one for the odd device a newer libvirt adds.
LIBVIRT_DEFAULT_DEVICES = 3


def domain_element(spec: DomainSpec) -> Element:
    """The ``<domain>`` element for ``spec``."""
    domain = etree.Element("domain", type=spec.domain_type)
    sub(domain, "name", text=spec.name)
    sub(domain, "uuid", text=spec.uuid)
    if spec.title is not None:
        sub(domain, "title", text=spec.title)
    if spec.managed:
        mark = marker_element(spec.uuid, spec.project_id, spec.flavor_name, spec.owner)
        sub(domain, "metadata").append(mark)
    sub(domain, "memory", {"unit": "MiB"}, str(spec.memory_mb))
    sub(domain, "vcpu", text=str(spec.vcpus))
    if spec.numa_cells:
        _numa_placement(domain, spec.numa_cells)
    os_el = sub(domain, "os")
    type_attrs = {"arch": spec.arch}
    if spec.machine is not None:
        type_attrs["machine"] = spec.machine
    sub(os_el, "type", type_attrs, "hvm")
    sub(os_el, "boot", {"dev": "hd"})
    if spec.arch == "x86_64":
        features = sub(domain, "features")
        sub(features, "acpi")
        sub(features, "apic")
    if spec.numa_cells:
        numa = sub(sub(domain, "cpu"), "numa")
        for i, cell in enumerate(spec.numa_cells):
            attrs = {
                "id": str(i),
                "cpus": format_index_list(cell.vcpus),
                "memory": str(cell.memory_mb),
                "unit": "MiB",
            }
            sub(numa, "cell", attrs)
    devices = sub(domain, "devices")
    disk = sub(devices, "disk", {"type": "file", "device": "disk"})
    sub(disk, "driver", {"name": "qemu", "type": spec.image_format})
    sub(disk, "source", {"file": spec.image_path})
    sub(disk, "target", {"dev": "vda", "bus": "virtio"})
    if spec.machine is not None and "q35" in spec.machine and spec.hotplug_ports:
        # The root complex first, with index 0: libvirt numbers controllers
        # written without an index from 0, and index 0 must be the pcie-root.
        sub(devices, "controller", {"type": "pci", "index": "0", "model": "pcie-root"})
        # libvirt puts every PCI device it places at define time (the disk, each
        # NIC and hostdev, its own USB controller and memory balloon) on a free
        # root port before it adds ports of its own: count those in, so
        # ``hotplug_ports`` are still free once the domain runs.
        placed = 1 + len(spec.interfaces) + len(spec.hostdevs) + LIBVIRT_DEFAULT_DEVICES
        for _ in range(spec.hotplug_ports + placed):
            sub(devices, "controller", {"type": "pci", "model": "pcie-root-port"})

    hostdevs = [hostdev_element(h) for h in spec.hostdevs]
    for port in spec.interfaces:
        element = interface_element(port)
        if element.tag == "hostdev":
            hostdevs.append(element)
        else:
            devices.append(element)
    serial = sub(devices, "serial", {"type": "pty"})
    if spec.console_log is not None:
        # append: a restarted or rebooted guest adds to the log instead of wiping it.
        sub(serial, "log", {"file": spec.console_log, "append": "on"})
    sub(serial, "target", {"port": "0"})
    console = sub(devices, "console", {"type": "pty"})
    sub(console, "target", {"type": "serial", "port": "0"})
    devices.extend(hostdevs)
    return domain


def _numa_placement(domain: Element, cells: Sequence[GuestNumaCell]) -> None:
    """``<cputune>`` (pinned cells only) and ``<numatune>``, in libvirt's order."""
    pinned = [cell for cell in cells if cell.pin is not None]
    if pinned:
        tune = sub(domain, "cputune")
        for cell in pinned:
            assert cell.pin is not None
            for vcpu in cell.vcpus:
                sub(tune, "vcpupin", {"vcpu": str(vcpu), "cpuset": format_index_list(cell.pin)})
    # strict: the guest's memory comes from its cells' nodes or not at all, so
    # it never silently lands away from its devices.
    numatune = sub(domain, "numatune")
    nodes = format_index_list(cell.host_node for cell in cells)
    sub(numatune, "memory", {"mode": "strict", "nodeset": nodes})
    for i, cell in enumerate(cells):
        sub(
            numatune,
            "memnode",
            {"cellid": str(i), "mode": "strict", "nodeset": str(cell.host_node)},
        )


def domain_xml(spec: DomainSpec) -> str:
    """The domain XML text for ``spec``."""
    return to_string(domain_element(spec))


def server_domain_spec(
    server_uuid: str,
    server_name: str,
    vcpus: int,
    memory_mb: int,
    image_path: str,
    hostdevs: Sequence[HostdevSpec] = (),
    interfaces: Sequence[InterfaceSpec] = (),
    image_format: str = "qcow2",
    console_log: str | None = None,
    managed: bool = False,
    domain_type: DomainType = "kvm",
    machine: str | None = "q35",
    project_id: str | None = None,
    flavor_name: str | None = None,
    owner: str | None = None,
    hotplug_ports: int = 0,
    numa_cells: Sequence[GuestNumaCell] = (),
) -> DomainSpec:
    """The domain for a server: named ``pcifleet-<uuid>``, titled with its name.

    The machine is ``q35`` (PCIe, which passed-through devices and VFs expect;
    libvirt expands it to the newest ``pc-q35-*`` it has). The agent passes
    ``managed=True`` (the pcifleet mark), a ``console_log``, the server's
    overlay as ``image_path``, the ``domain_type`` its driver found, and
    ``hotplug_ports`` free PCIe root ports for interfaces attached later.
    """
    return DomainSpec(
        name=domain_name_for(server_uuid),
        uuid=server_uuid,
        memory_mb=memory_mb,
        vcpus=vcpus,
        image_path=image_path,
        image_format=image_format,  # type: ignore[arg-type]  # checked by DomainSpec
        hostdevs=tuple(hostdevs),
        interfaces=tuple(interfaces),
        title=server_name,
        console_log=console_log,
        managed=managed,
        domain_type=domain_type,
        machine=machine,
        project_id=project_id,
        flavor_name=flavor_name,
        owner=owner,
        hotplug_ports=hotplug_ports,
        numa_cells=tuple(numa_cells),
    )
