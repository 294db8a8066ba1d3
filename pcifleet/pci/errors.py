"""Exceptions of the PCI model.

Every parser error is a ``ValueError`` subclass whose message names the field and
the offending value, so the API and the CLI can show it as it is.
"""


class InvalidPciAddress(ValueError):
    """A PCI address that is not ``dddd:bb:ss.f`` within the PCI limits."""


class InvalidPciDevice(ValueError):
    """A device description with a missing or malformed field."""


class InvalidDeviceSpec(ValueError):
    """A device_spec (passthrough_whitelist) entry the operator wrote wrong."""


class InvalidAlias(ValueError):
    """A PCI alias entry, or a flavor's reference to one, that is wrong."""


class InvalidPciRequest(ValueError):
    """A PCI request that cannot be built or read back."""


class PciRequestsUnsatisfiable(Exception):
    """The requests cannot all be met at once by these pools or devices."""


class InvalidDeviceTransition(Exception):
    """A device state change that the state machine does not allow."""


class InvalidNumaTopology(ValueError):
    """A host NUMA topology (as an agent reports it) that is malformed."""


class InvalidNumaRequest(ValueError):
    """A flavor extra spec, image property or port field about NUMA that is wrong."""
