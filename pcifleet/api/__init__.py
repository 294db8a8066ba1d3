"""pcifleet.api layer (see DESIGN.md)."""
