"""pcifleet.virt layer (see DESIGN.md)."""
