"""The ``libvirt`` driver: libvirt-python against a URI (``qemu:///system``...).

libvirt is imported on first use, so pcifleet works where libvirt-python is not
installed and only this driver reports it. Domains are defined with schema
validation on (``VIR_DOMAIN_DEFINE_VALIDATE``), so libvirt's own RelaxNG schema
judges every XML we send. ``test:///default`` needs no daemon; note that each
open of it is a fresh in-memory host, so one driver instance is one host.

Power actions follow Nova's libvirt driver: a clean stop and a soft reboot press
the ACPI power button and watch for the guest to shut off (only then is a soft
reboot known to have happened), and fall back to a hard power off when it does
not within the timeout. Suspend is libvirt's managed save; ``start`` restores it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from lxml import etree

from pcifleet.virt import domain_edit
from pcifleet.virt.console import check_length, console_log_of, read_tail
from pcifleet.virt.domain_xml import domain_xml
from pcifleet.virt.drivers.base import DEFAULT_SHUTDOWN_TIMEOUT, DomainInfo, DriverInfo, VirtDriver
from pcifleet.virt.errors import (
    DeviceExists,
    DomainExists,
    DomainNotFound,
    DomainStateError,
    DriverUnavailable,
    UnsupportedOperation,
    VirtDriverError,
)
from pcifleet.virt.interface_xml import DeviceSpec, device_xml
from pcifleet.virt.marker import XMLNS, marked_owner
from pcifleet.virt.model import DomainSpec, DomainType
from pcifleet.virt.power import PowerState, check_timeout, require
from pcifleet.virt.validate import check_uuid
from pcifleet.virt.xmlutil import parse as xml_parse

DEFAULT_URI = "qemu:///system"
log = logging.getLogger(__name__)
# How often a clean shutdown looks whether the guest has gone yet.
POLL_INTERVAL = 0.5
# How long a detach from a running guest waits for the guest to let the device go
# (Nova waits about as long across its retries).
DETACH_WAIT_SECONDS = 30.0
P = PowerState


def import_libvirt() -> Any:
    """The libvirt module, or ``DriverUnavailable`` saying how to get it."""
    try:
        import libvirt
    except ImportError as exc:
        raise DriverUnavailable(
            f"libvirt-python is not installed ({exc}); install the 'libvirt' extra "
            "(needs libvirt-dev, pkg-config and a compiler)"
        ) from None
    # libvirt prints every error to stderr by default; we raise them instead.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


class LibvirtDriver(VirtDriver):
    """Defines and runs domains through a libvirt connection."""

    name = "libvirt"

    def __init__(self, uri: str = DEFAULT_URI) -> None:
        self.uri = uri
        self._lv: Any = None
        self._conn: Any = None
        self._domain_type: DomainType | None = None

    # -- connection and errors -------------------------------------------------

    @property
    def conn(self) -> Any:
        """The open connection (opened on first use)."""
        if self._conn is None:
            self._lv = import_libvirt()
            try:
                self._conn = self._lv.open(self.uri)
            except self._lv.libvirtError as exc:
                raise DriverUnavailable(f"cannot connect to {self.uri}: {exc}") from None
        return self._conn

    def _error(self, exc: Any, what: str) -> VirtDriverError:
        code = exc.get_error_code()
        lv = self._lv
        kind: type[VirtDriverError] = VirtDriverError
        if code == lv.VIR_ERR_NO_DOMAIN:
            kind = DomainNotFound
        elif code == lv.VIR_ERR_OPERATION_INVALID:
            kind = DomainStateError
        elif code == lv.VIR_ERR_NO_SUPPORT:
            kind = UnsupportedOperation
        return kind(f"{what}: {exc}")

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, a libvirt error turned into ours; ``what`` starts its message."""
        try:
            return fn(*args)
        except self._lv.libvirtError as exc:
            raise self._error(exc, what) from None

    def _lookup(self, uuid: str) -> Any:
        return self._call(f"domain {uuid}", self.conn.lookupByUUIDString, check_uuid(uuid))

    def _domain_info(self, dom: Any) -> DomainInfo:
        title = None
        # A domain without a title makes libvirt raise; that just means None.
        with contextlib.suppress(self._lv.libvirtError):
            title = dom.metadata(self._lv.VIR_DOMAIN_METADATA_TITLE, None, 0)
        mark = None
        # Likewise a domain without our mark: libvirt says "metadata not found".
        with contextlib.suppress(self._lv.libvirtError):
            mark = dom.metadata(self._lv.VIR_DOMAIN_METADATA_ELEMENT, XMLNS, 0)
        owner = None
        if mark:
            # A mark someone garbled by hand still marks the domain ours.
            with contextlib.suppress(etree.XMLSyntaxError):
                owner = marked_owner(xml_parse(mark))
        return DomainInfo(dom.UUIDString(), dom.name(), title, self._state(dom), bool(mark), owner)

    def _state(self, dom: Any) -> PowerState:
        lv = self._lv
        state = self._call(f"state of domain {dom.UUIDString()}", dom.state)[0]
        if state == lv.VIR_DOMAIN_SHUTOFF:
            saved = self._call("managed save image", dom.hasManagedSaveImage, 0)
            return P.SUSPENDED if saved else P.SHUTDOWN
        return {
            lv.VIR_DOMAIN_RUNNING: P.RUNNING,
            lv.VIR_DOMAIN_BLOCKED: P.RUNNING,  # running, waiting on I/O
            lv.VIR_DOMAIN_SHUTDOWN: P.RUNNING,  # still active while it shuts down
            lv.VIR_DOMAIN_PAUSED: P.PAUSED,
            lv.VIR_DOMAIN_CRASHED: P.CRASHED,
            # The guest's own S3 sleep; Nova calls it suspended too.
            lv.VIR_DOMAIN_PMSUSPENDED: P.SUSPENDED,
        }.get(state, P.NOSTATE)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the driver contract ----------------------------------------------------

    def describe(self) -> DriverInfo:
        return DriverInfo(
            name=self.name,
            description="libvirt-python; domains defined with libvirt schema validation",
            location=self.uri,
            live_attach=not self.uri.startswith("test:"),
        )

    def domain_type(self) -> DomainType:
        """``kvm`` when libvirt's domain capabilities say KVM is usable (it picks
        kvm over qemu when ``/dev/kvm`` works for it), else ``qemu``.

        A driver without domain capabilities (``test:///``) is judged by its host
        capabilities' guest domain types instead. Asked once per connection.
        """
        if self._domain_type is None:
            lv, conn = self._lv_conn()
            try:
                # No virttype: libvirt answers for the best it has, kvm before qemu.
                caps = conn.getDomainCapabilities(None, None, None, None, 0)
            except lv.libvirtError as exc:
                if exc.get_error_code() != lv.VIR_ERR_NO_SUPPORT:
                    raise self._error(exc, "domain capabilities") from None
                host = self._call("host capabilities", conn.getCapabilities)
                self._domain_type = domain_type_of_host(host)
            else:
                self._domain_type = domain_type_of_domcaps(caps)
        return self._domain_type

    def define(self, spec: DomainSpec) -> DomainInfo:
        return self.define_xml(domain_xml(spec), spec.name, spec.uuid)

    def define_xml(self, xml: str, name: str, uuid: str) -> DomainInfo:
        """Define prepared domain XML (``name``/``uuid`` as written in it)."""
        lv, conn = self._lv_conn()
        try:
            other = conn.lookupByName(name)
        except lv.libvirtError:
            other = None
        if other is not None and other.UUIDString() != uuid:
            raise DomainExists(f"domain {name!r} already exists with UUID {other.UUIDString()}")
        dom = self._call(
            f"define {name!r}", conn.defineXMLFlags, xml, lv.VIR_DOMAIN_DEFINE_VALIDATE
        )
        return self._domain_info(dom)

    def can_migrate(self) -> bool:
        return True

    def migrate(
        self,
        uuid: str,
        dest_uri: str,
        dest_xml: str,
        *,
        migrate_uri: str | None = None,
        copy_storage: bool = False,
    ) -> None:
        """virDomainMigrateToURI3 as Nova's libvirt driver calls it: live, peer to
        peer, defined on the destination (as ``dest_xml``, which carries the
        destination's VF netdevs, device addresses and disk) and undefined here.
        Without shared storage it is Nova's block migration: NON_SHARED_INC
        copies only the overlay's own clusters, since the destination's overlay
        sits on its own copy of the same image."""
        lv, _ = self._lv_conn()
        dom = self._lookup(uuid)
        flags = (
            lv.VIR_MIGRATE_LIVE
            | lv.VIR_MIGRATE_PEER2PEER
            | lv.VIR_MIGRATE_PERSIST_DEST
            | lv.VIR_MIGRATE_UNDEFINE_SOURCE
        )
        if copy_storage:
            flags |= lv.VIR_MIGRATE_NON_SHARED_INC
        params: dict[str, Any] = {
            lv.VIR_MIGRATE_PARAM_DEST_XML: dest_xml,
            lv.VIR_MIGRATE_PARAM_PERSIST_XML: dest_xml,
        }
        if migrate_uri is not None:
            params[lv.VIR_MIGRATE_PARAM_URI] = migrate_uri
        self._call(f"migrate {uuid} to {dest_uri}", dom.migrateToURI3, dest_uri, params, flags)

    def start(self, uuid: str) -> None:
        dom = self._lookup(uuid)
        # Checked here because drivers disagree on the error (test:/// says
        # "internal error"), and callers need one answer.
        if dom.isActive():
            raise DomainStateError(f"domain {uuid} is already running")
        try:
            dom.create()
        except self._lv.libvirtError as exc:
            if not _kvm_refused(str(exc)):
                raise self._error(exc, f"start {uuid}") from None
            dom = self._emulated(dom, uuid, str(exc))
            self._call(f"start {uuid} (emulated)", dom.create)

    def _emulated(self, dom: Any, uuid: str, reason: str) -> Any:
        """The domain redefined as ``type='qemu'`` after QEMU could not open KVM.

        libvirt's capabilities offer ``kvm`` whenever libvirtd itself can open
        ``/dev/kvm``, yet the qemu user it runs guests as may not (a device
        node left ``0600 root``): such a host still runs guests, emulated, and
        every later server on this connection is defined that way from the start.
        """
        xml = self._call(f"dumpxml {uuid}", dom.XMLDesc, self._lv.VIR_DOMAIN_XML_INACTIVE)
        root = xml_parse(xml)
        if root.get("type") != "kvm":
            raise VirtDriverError(f"start {uuid}: {reason}")
        if self._domain_type != "qemu":
            log.warning(
                "%s: QEMU cannot use KVM (%s); guests run emulated (type qemu). Let "
                "libvirt's qemu user open /dev/kvm (group kvm, mode 0660) for KVM.",
                self.uri,
                reason.strip().splitlines()[-1][:200],
            )
        self._domain_type = "qemu"
        root.set("type", "qemu")
        ident = domain_edit.identity(root)
        self.define_xml(etree.tostring(root, encoding="unicode"), ident.name, ident.uuid)
        return self._lookup(uuid)

    def destroy(self, uuid: str) -> None:
        dom = self._lookup(uuid)
        if not dom.isActive():
            return
        self._call(f"destroy {uuid}", dom.destroy)

    def undefine(self, uuid: str) -> None:
        dom = self._lookup(uuid)
        if dom.isActive():
            raise DomainStateError(f"domain {uuid} is running; destroy it first")
        # A suspended domain's saved memory goes with it (libvirt refuses otherwise).
        flags = self._lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        self._call(f"undefine {uuid}", dom.undefineFlags, flags)

    def attach_interface(self, uuid: str, device: DeviceSpec) -> None:
        self._change_device(uuid, device, attach=True)

    def detach_interface(self, uuid: str, device: DeviceSpec) -> None:
        self._change_device(uuid, device, attach=False)

    def _change_device(self, uuid: str, device: DeviceSpec, *, attach: bool) -> None:
        lv = self._lv_conn()[0]
        dom = self._lookup(uuid)
        inactive = dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE)
        # Check libvirt's current view (live when running) first, so both drivers
        # give the same errors whatever the hypervisor would say.
        current = dom.XMLDesc(0) if dom.isActive() else inactive
        if attach:
            problem = domain_edit.conflicts(domain_edit.read_domain(current), device)
            if problem is not None:
                raise DeviceExists(problem)
        else:
            domain_edit.remove_device(current, device)  # raises DeviceNotFound
        xml = device_xml(device)
        call = dom.attachDeviceFlags if attach else dom.detachDeviceFlags
        verb = "attach" if attach else "detach"
        if dom.isActive():
            flags = lv.VIR_DOMAIN_AFFECT_LIVE
            if dom.isPersistent():
                flags |= lv.VIR_DOMAIN_AFFECT_CONFIG
            self._call(f"{verb} on running domain {uuid}", call, xml, flags)
            if not attach:
                self._wait_detached(dom, uuid, device)
            return
        try:
            call(xml, lv.VIR_DOMAIN_AFFECT_CONFIG)
        except lv.libvirtError as exc:
            if exc.get_error_code() != lv.VIR_ERR_NO_SUPPORT:
                raise self._error(exc, f"{verb} on domain {uuid}") from None
            # Some drivers (test:///) cannot edit a config in place; redefining
            # the inactive XML with the device changed is the same edit.
            edit = domain_edit.add_device if attach else domain_edit.remove_device
            ident = domain_edit.identity(domain_edit.read_domain(inactive))
            self.define_xml(edit(inactive, device), ident.name, ident.uuid)

    def _wait_detached(self, dom: Any, uuid: str, device: DeviceSpec) -> None:
        """Wait until the guest has let the device go.

        A detach from a running guest only asks it (ACPI hot unplug); libvirt may
        return before the guest answers, and a VF still in the guest must not be
        handed to another server. Until it is gone from the live XML the detach
        has not happened, whatever the call returned.
        """
        deadline = time.monotonic() + DETACH_WAIT_SECONDS
        while True:
            live = self._call(f"dumpxml {uuid}", dom.XMLDesc, 0)
            if domain_edit.find_device(domain_edit.read_domain(live), device) is None:
                return
            if time.monotonic() >= deadline or not dom.isActive():
                break
            time.sleep(0.2)
        if dom.isActive():
            raise VirtDriverError(
                f"detach on running domain {uuid}: the guest did not release the device "
                f"within {DETACH_WAIT_SECONDS:.0f} s"
            )

    def _lv_conn(self) -> tuple[Any, Any]:
        conn = self.conn
        return self._lv, conn

    def list(self) -> list[DomainInfo]:
        domains = self._call("list domains", self.conn.listAllDomains, 0)
        return sorted((self._domain_info(d) for d in domains), key=lambda i: i.name)

    def info(self, uuid: str) -> DomainInfo:
        return self._domain_info(self._lookup(uuid))

    def get_xml(self, uuid: str) -> str:
        dom = self._lookup(uuid)
        return str(self._call(f"dumpxml {uuid}", dom.XMLDesc, 0))

    def migratable_xml(self, uuid: str) -> str:
        # As Nova builds its destination XML: the running domain's, migratable
        # (no CPU check or other details the source expanded for itself).
        dom = self._lookup(uuid)
        flags = self._lv.VIR_DOMAIN_XML_MIGRATABLE
        return str(self._call(f"dumpxml --migratable {uuid}", dom.XMLDesc, flags))

    # -- power ----------------------------------------------------------------------

    def power_state(self, uuid: str) -> PowerState:
        return self._state(self._lookup(uuid))

    def _wait_off(self, dom: Any, timeout: float) -> bool:
        """Whether the domain shuts off within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while dom.isActive():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL_INTERVAL, left))
        return True

    def _clean_shutdown(self, dom: Any, uuid: str, timeout: float) -> bool:
        """ACPI power button, then wait; whether the guest went off by itself."""
        if timeout <= 0:
            return False
        try:
            dom.shutdown()
        except self._lv.libvirtError:
            # No ACPI (or the guest agent path failed): only a hard stop is left.
            return not dom.isActive()
        return self._wait_off(dom, timeout)

    def stop(self, uuid: str, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        timeout = check_timeout(timeout)
        dom = self._lookup(uuid)
        state = self._state(dom)
        if state is P.SHUTDOWN:
            return
        require("stop", uuid, state, P.RUNNING, P.PAUSED, P.CRASHED, P.NOSTATE)
        # Paused vCPUs cannot see the power button: waiting would only waste the timeout.
        if state is P.RUNNING and self._clean_shutdown(dom, uuid, timeout):
            return
        if dom.isActive():
            self._call(f"stop {uuid}", dom.destroy)

    def reboot(self, uuid: str, hard: bool, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        timeout = check_timeout(timeout)
        dom = self._lookup(uuid)
        if not hard:
            require("soft reboot", uuid, self._state(dom), P.RUNNING)
            # Shut down and start (not virDomainReboot) so we know the guest did it,
            # and the domain comes back with its persistent config, as Nova does.
            if self._clean_shutdown(dom, uuid, timeout):
                self._call(f"start {uuid} after its clean shutdown", dom.create)
                return
        if dom.isActive():
            self._call(f"power off {uuid}", dom.destroy)
        if self._call("managed save image", dom.hasManagedSaveImage, 0):
            # A hard reboot is a power cycle: it boots afresh, not from saved memory.
            self._call(f"discard saved image of {uuid}", dom.managedSaveRemove, 0)
        self._call(f"start {uuid}", dom.create)

    def pause(self, uuid: str) -> None:
        dom = self._lookup(uuid)
        require("pause", uuid, self._state(dom), P.RUNNING)
        self._call(f"pause {uuid}", dom.suspend)

    def unpause(self, uuid: str) -> None:
        dom = self._lookup(uuid)
        require("unpause", uuid, self._state(dom), P.PAUSED)
        self._call(f"unpause {uuid}", dom.resume)

    def suspend(self, uuid: str) -> None:
        dom = self._lookup(uuid)
        require("suspend", uuid, self._state(dom), P.RUNNING, P.PAUSED)
        # SAVE_RUNNING: resume gives a running guest even if it was paused when saved.
        self._call(f"suspend {uuid}", dom.managedSave, self._lv.VIR_DOMAIN_SAVE_RUNNING)

    def resume(self, uuid: str) -> None:
        dom = self._lookup(uuid)
        require("resume", uuid, self._state(dom), P.SUSPENDED)
        if dom.isActive():  # asleep in the guest's own S3: wake it
            self._call(f"wake {uuid}", dom.pmWakeup, 0)
        else:
            self._call(f"resume {uuid}", dom.create)

    def console_output(self, uuid: str, length: int | None = None) -> str:
        length = check_length(length)
        dom = self._lookup(uuid)
        root = domain_edit.read_domain(self._call(f"dumpxml {uuid}", dom.XMLDesc, 0))
        path = console_log_of(root)
        if path is None:
            raise UnsupportedOperation(
                f"domain {uuid} does not log its serial console to a file "
                "(no <log file=...> on its serial); there is no output to read"
            )
        try:
            return read_tail(path, length)
        except FileNotFoundError:
            # qemu makes the file when the domain starts; before that (or on a
            # hypervisor that ran no guest) there is no output yet, as in Nova.
            return ""
        except OSError as exc:
            raise UnsupportedOperation(
                f"console log {path} of domain {uuid} cannot be read: {exc.strerror or exc}"
            ) from None


def domain_type_of_domcaps(xml: str) -> DomainType:
    """``kvm`` if ``virsh domcapabilities`` output names the kvm domain type."""
    root = xml_parse(xml)
    return "kvm" if (root.findtext("domain") or "").strip() == "kvm" else "qemu"


def domain_type_of_host(xml: str) -> DomainType:
    """``kvm`` if ``virsh capabilities`` output offers a kvm guest domain."""
    root = xml_parse(xml)
    return "kvm" if root.find("guest/arch/domain[@type='kvm']") is not None else "qemu"


def _kvm_refused(message: str) -> bool:
    """Whether a failed start is QEMU unable to open KVM (not any other fault)."""
    text = message.lower()
    return "failed to initialize kvm" in text or "could not access kvm kernel module" in text
