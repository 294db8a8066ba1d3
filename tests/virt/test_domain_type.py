"""Which domain type a server gets: kvm where libvirt can use KVM, else qemu."""

from __future__ import annotations

from typing import Any

import pytest

from pcifleet.virt import VirtDriverError, get_driver, server_domain_spec
from pcifleet.virt.drivers.libvirt_driver import (
    LibvirtDriver,
    domain_type_of_domcaps,
    domain_type_of_host,
)
from tests.virt.conftest import fresh_test_host

UUID = "6f1c2b8e-4a8f-4f6e-9a52-3b8c1d2e7f10"

# Trimmed `virsh domcapabilities` of a host with a usable /dev/kvm, and of one
# without (libvirt then answers for plain qemu emulation).
DOMCAPS = """<domainCapabilities>
  <path>/usr/bin/qemu-system-x86_64</path>
  <domain>{}</domain>
  <machine>pc-q35-7.2</machine>
  <arch>x86_64</arch>
</domainCapabilities>"""

HOST_CAPS = """<capabilities>
  <host><cpu><arch>x86_64</arch></cpu></host>
  <guest>
    <os_type>hvm</os_type>
    <arch name="x86_64">
      <emulator>/usr/bin/qemu-system-x86_64</emulator>
      <domain type="qemu"/>
      {}
    </arch>
  </guest>
</capabilities>"""


@pytest.mark.parametrize(("found", "chosen"), [("kvm", "kvm"), ("qemu", "qemu")])
def test_domain_capabilities_decide(found: str, chosen: str) -> None:
    assert domain_type_of_domcaps(DOMCAPS.format(found)) == chosen


@pytest.mark.parametrize(("extra", "chosen"), [('<domain type="kvm"/>', "kvm"), ("", "qemu")])
def test_host_capabilities_decide_without_domain_capabilities(extra: str, chosen: str) -> None:
    assert domain_type_of_host(HOST_CAPS.format(extra)) == chosen


class FakeConn:
    """A connection that answers domain capabilities as told, and counts asks."""

    def __init__(self, domcaps: str | Exception, host: str = HOST_CAPS.format("")) -> None:
        self.domcaps = domcaps
        self.host = host
        self.asked = 0

    def getDomainCapabilities(self, *args: Any) -> str:
        self.asked += 1
        if isinstance(self.domcaps, Exception):
            raise self.domcaps
        return self.domcaps

    def getCapabilities(self) -> str:
        return self.host

    def close(self) -> None:
        pass


def _driver_on(conn: FakeConn, libvirt_module: Any) -> LibvirtDriver:
    driver = LibvirtDriver("qemu:///system")
    driver._lv, driver._conn = libvirt_module, conn
    return driver


@pytest.mark.parametrize("found", ["kvm", "qemu"])
def test_the_driver_asks_libvirt_once(found: str, libvirt_module: Any) -> None:
    conn = FakeConn(DOMCAPS.format(found))
    driver = _driver_on(conn, libvirt_module)
    assert driver.domain_type() == found
    assert driver.domain_type() == found
    assert conn.asked == 1


def test_test_driver_reports_qemu(libvirt_module: Any) -> None:
    # test:/// has no domain capabilities and offers only its own "test" guest
    # type, so no kvm: a build there defines qemu domains, and they define.
    fresh_test_host()
    with get_driver("libvirt", uri="test:///default") as driver:
        assert driver.domain_type() == "qemu"
        spec = server_domain_spec(
            UUID, "vm", 1, 512, "/var/lib/pcifleet/disks/x.qcow2",
            domain_type=driver.domain_type(), managed=True,
        )  # fmt: skip
        driver.define(spec)
        assert f'type="{spec.domain_type}"' in driver.get_xml(UUID).replace("'", '"')
        driver.undefine(UUID)


def test_a_broken_capabilities_call_is_a_driver_error(libvirt_module: Any) -> None:
    error = libvirt_module.libvirtError("cannot read /dev/kvm")
    error.err = (
        libvirt_module.VIR_ERR_INTERNAL_ERROR,
        0,
        "cannot read /dev/kvm",
        2,
        "",
        "",
        "",
        0,
        0,
    )
    driver = _driver_on(FakeConn(error), libvirt_module)
    with pytest.raises(VirtDriverError, match="domain capabilities"):
        driver.domain_type()


def test_the_xml_driver_stands_in_for_kvm(tmp_path: Any) -> None:
    assert get_driver("xml", state_dir=tmp_path).domain_type() == "kvm"
