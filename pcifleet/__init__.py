"""pcifleet: PCI passthrough and SR-IOV ports for KVM/libvirt fleets."""

__version__ = "0.1.0"
