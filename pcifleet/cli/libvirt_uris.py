"""Which libvirtd each simulated host of ``pcifleet up --virt libvirt`` uses.

``--libvirt-uri URI`` is every host's; ``--libvirt-uri HOST=URI`` (repeatable)
gives one host its own. Hosts on their own libvirtds can live-migrate between
them for real: a host whose URI names a network address (``qemu+tcp://
127.0.0.3/system``) takes migrations at that address, and every host reaches
the others with its own URI's shape, the address swapped for ``%s`` (the
agent's ``live_migration_uri`` and ``live_migration_inbound_addr``). Hosts
sharing one libvirtd cannot migrate between themselves: there is only one
domain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

DEFAULT_URI = "qemu:///system"
_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class HostUris:
    default: str = DEFAULT_URI
    per_host: dict[str, str] = field(default_factory=dict)

    def of(self, host: str) -> str:
        """The URI of ``host``'s libvirtd."""
        return self.per_host.get(host, self.default)


def parse_libvirt_uris(values: tuple[str, ...] | list[str]) -> HostUris:
    """``--libvirt-uri`` values; ``ValueError`` naming the bad one."""
    default: str | None = None
    per_host: dict[str, str] = {}
    for value in values:
        name, sep, uri = value.partition("=")
        # a URI's own '=' comes after '?' or '://'; a host name has neither
        if sep and "://" not in name and "?" not in name:
            if not _HOST_RE.fullmatch(name):
                raise ValueError(f"--libvirt-uri {value!r}: {name!r} is not a host name")
            if name in per_host:
                raise ValueError(f"--libvirt-uri: host {name} is given twice")
            per_host[name] = _check(uri, value)
        else:
            if default is not None:
                raise ValueError("--libvirt-uri: two URIs for every host; name hosts (HOST=URI)")
            default = _check(value, value)
    return HostUris(default or DEFAULT_URI, per_host)


def _check(uri: str, value: str) -> str:
    parts = urlsplit(uri)
    if not parts.scheme or not uri.startswith(f"{parts.scheme}:/"):
        raise ValueError(f"--libvirt-uri {value!r}: not a libvirt URI (e.g. qemu:///system)")
    return uri


def migration_settings(uri: str) -> tuple[str | None, str | None]:
    """(``live_migration_uri``, ``live_migration_inbound_addr``) of a host on
    ``uri``: its URI with the address as ``%s``, and the address; (None, None)
    for a libvirtd reached without one (``qemu:///system``, a socket)."""
    parts = urlsplit(uri)
    address = parts.hostname
    if not address:
        return None, None
    shown = f"[{address}]" if ":" in address else address
    netloc = parts.netloc.replace(shown, "%s", 1)
    template = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return template, address
