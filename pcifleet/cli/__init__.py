"""The ``pcifleet`` command (top layer)."""
