"""Exceptions of the host layer.

Each message names what was read (a path, a file, a config field) so the CLI can
print it as one line and the operator knows where to look.
"""


class HostDiscoveryError(Exception):
    """A whole source cannot be read (no such sysfs root, libvirt unreachable).

    Problems with single devices are not errors: they become warnings of the
    inventory, because a host keeps changing while it is read.
    """


class HostConfigError(ValueError):
    """The operator's config file (or a host layout file) is unreadable or has a bad field."""
