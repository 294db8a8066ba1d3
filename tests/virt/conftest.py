"""Fixtures for the virt tests: libvirt's test:///default host and its tools."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.system import need_command, unavailable


@pytest.fixture(scope="session")
def libvirt_module() -> Any:
    try:
        import libvirt
    except ImportError as exc:
        unavailable(
            f"libvirt-python does not import ({exc}): install the 'libvirt' extra "
            "(Debian packages libvirt-dev pkg-config and a compiler)"
        )
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


@pytest.fixture
def test_conn(libvirt_module: Any) -> Iterator[Any]:
    """A fresh in-memory libvirt host.

    Connections to test:///default open at the same time share one host; it
    starts afresh once every connection (and every domain object holding one) is
    gone. So each test opens its own and must find only the built-in domain.
    """
    conn = libvirt_module.open("test:///default")
    names = [d.name() for d in conn.listAllDomains()]
    assert names == ["test"], (
        f"test:///default is still shared with another open connection: {names}"
    )
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def virt_xml_validate() -> str:
    return need_command("virt-xml-validate", "libvirt-clients libxml2-utils")
