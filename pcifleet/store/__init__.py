"""pcifleet.store layer (see DESIGN.md)."""
