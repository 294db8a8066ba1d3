"""pcifleet.host layer (see DESIGN.md)."""
