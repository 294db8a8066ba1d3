"""Fixtures for the virt tests: libvirt's test:///default host and its tools."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pcifleet.virt import VirtDriver, get_driver
from tests.system import need_command, unavailable


def fresh_test_host() -> None:
    """Let go of connections only garbage still holds, so test:///default starts afresh.

    An exception a test kept (``pytest.raises(...) as excinfo``) references its
    traceback's frames, and through them a driver's domain objects and so their
    connection: a cycle that only the collector breaks.
    """
    gc.collect()


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
    fresh_test_host()
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


@pytest.fixture(params=["xml", "libvirt"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VirtDriver]:
    """Each test runs once on the xml driver and once on libvirt's test:///default."""
    if request.param == "xml":
        drv = get_driver("xml", state_dir=tmp_path / "state")
    else:
        request.getfixturevalue("libvirt_module")  # skips (or fails in CI) without it
        fresh_test_host()
        drv = get_driver("libvirt", uri="test:///default")
        # test:///default is shared by the connections open at once in a process
        # and fresh once all are closed: this test must start from libvirt's
        # single built-in "test" domain.
        assert [d.name for d in drv.list()] == ["test"]
    with drv:
        yield drv
