"""pcifleet.scheduler layer (see DESIGN.md)."""
