"""Checks before ``pcifleet up`` hands hosts to a real libvirtd, each failing with
what to do about it, so a first try does not end in servers stuck in ERROR."""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

from pcifleet.cli.errors import CliError
from pcifleet.virt import DriverUnavailable, VirtDriverError, get_driver

KVM_DEVICE = Path("/dev/kvm")


def check_libvirt(uri: str) -> str:
    """Connect to ``uri`` and return the domain type its guests will get; a
    ``CliError`` saying how to start libvirtd when it cannot be reached."""
    try:
        with get_driver("libvirt", uri=uri) as driver:
            return driver.domain_type()
    except (DriverUnavailable, VirtDriverError) as exc:
        raise CliError(
            f"{exc}\n  Is libvirtd running? On Debian/Ubuntu: apt install libvirt-daemon-system "
            "qemu-system-x86 qemu-utils, then `systemctl start libvirtd` (without systemd: "
            "`virtlogd -d && libvirtd -d` as root)."
        ) from None


def closed_directory(path: Path) -> Path | None:
    """The first directory on the way to ``path`` that other users may not enter,
    or None when all may. libvirt runs system guests as its own qemu user, who
    must reach each server's disk and the image it is backed by."""
    path = path.resolve()
    for directory in [*reversed(path.parents), path]:
        try:
            mode = directory.stat().st_mode
        except FileNotFoundError:
            return None  # made later by us, enterable
        if not mode & stat.S_IXOTH:
            return directory
    return None


def check_state_dir(uri: str, state_dir: Path) -> None:
    """Refuse a state directory libvirt's qemu user cannot reach (system URIs)."""
    if not uri.startswith("qemu:///system"):
        return
    closed = closed_directory(state_dir)
    if closed is not None:
        raise CliError(
            f"libvirt's QEMU runs as its own user and cannot enter {closed} (mode "
            f"{stat.S_IMODE(closed.stat().st_mode):o}), so it could not open the servers' disks "
            f"under {state_dir}. Pick a --data-dir it can reach, e.g. --data-dir "
            "/var/lib/pcifleet."
        )


def kvm_warning() -> str | None:
    """Why guests may run emulated here, or None. libvirt offers KVM whenever
    libvirtd (root) can open /dev/kvm, but its qemu user needs it too; the
    driver then falls back to emulation, and libvirt re-probes QEMU on every
    call, which makes each define take a minute."""
    try:
        st = KVM_DEVICE.stat()
    except OSError:
        return None
    try:
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        kvm_gid = None
    group_ok = st.st_gid == kvm_gid and st.st_mode & stat.S_IRGRP and st.st_mode & stat.S_IWGRP
    if group_ok or (st.st_mode & stat.S_IROTH and st.st_mode & stat.S_IWOTH):
        return None
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return None  # not ours to judge: we cannot open it either
    return (
        f"{KVM_DEVICE} is mode {stat.S_IMODE(st.st_mode):o}, owner {st.st_uid}:{st.st_gid}: "
        "libvirt's qemu user cannot open it, so guests run emulated and libvirt slows to a "
        "crawl. As udev does on a normal install: chgrp kvm /dev/kvm && chmod 0660 /dev/kvm"
    )
