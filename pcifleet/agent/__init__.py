"""pcifleet.agent layer (see DESIGN.md)."""
