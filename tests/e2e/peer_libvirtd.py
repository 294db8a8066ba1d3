"""A second (third...) libvirtd on this machine, standing in for another host's.

Each runs in its own mount namespace, where empty directories are bound over
libvirt's (``/etc/libvirt``, ``/run/libvirt``, ``/var/lib/libvirt``,
``/var/cache/libvirt``, ``/var/log/libvirt``), so it has its own
configuration, ``host_uuid``, sockets, domains and log daemon, as a daemon on
another machine would; it listens on TCP at a loopback address of its own
(``127.0.0.N``: every 127/8 address is this machine's), which its host's
agent and the other daemons reach it at, and guests' memory streams go to.
The network namespace is shared: the simulated hosts' VF netdevs (veths) and
bridges are seen by every daemon, each host using only its own.

Needs root, ``unshare`` and libvirt's daemons; the caller skips otherwise.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BOUND = ("etc/libvirt", "run/libvirt", "var/lib/libvirt", "var/cache/libvirt", "var/log/libvirt")
# copied into the daemon's own /etc/libvirt; the rest (networks, hooks) it does without
CONFIGS = ("qemu.conf", "virtlogd.conf", "libvirt.conf")


def missing() -> str | None:
    """Why a peer libvirtd cannot run here, or None."""
    if os.geteuid() != 0:
        return "a peer libvirtd needs root (mount namespaces)"
    for tool in ("unshare", "libvirtd", "virtlogd", "virsh"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _wait(uri: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["virsh", "-c", uri, "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return
        time.sleep(0.3)
    raise RuntimeError(f"peer libvirtd at {uri} did not answer: {log.read_text()[-2000:]}")


def _stop(root: Path) -> None:
    for name in ("libvirtd", "virtlogd"):
        pid_file = root / "run/libvirt" / f"{name}.pid"
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            continue
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)


@contextmanager
def peer_libvirtd(root: Path, address: str) -> Iterator[str]:
    """Run a libvirtd for another host under ``root``, listening at
    ``address``; yields its URI (``qemu+tcp://ADDRESS/system``). Its domains
    are destroyed and it stops when the block ends."""
    for path in BOUND:
        (root / path).mkdir(parents=True, exist_ok=True)
    etc = root / "etc/libvirt"
    for name in CONFIGS:
        if Path("/etc/libvirt", name).exists():
            shutil.copy(Path("/etc/libvirt", name), etc / name)
    (etc / "libvirtd.conf").write_text(
        'listen_tls = 0\nlisten_tcp = 1\nauth_tcp = "none"\n'
        f'listen_addr = "{address}"\nhost_uuid = "{uuid.uuid4()}"\n'
    )
    binds = " && ".join(f"mount --bind {shlex.quote(str(root / p))} /{p}" for p in BOUND)
    log = root / "daemon.log"
    script = (
        f"{binds} && virtlogd -d -p /run/libvirt/virtlogd.pid"
        " && libvirtd -d --listen -p /run/libvirt/libvirtd.pid"
    )
    with log.open("w") as out:
        subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=60,
        )
    uri = f"qemu+tcp://{address}/system"
    try:
        _wait(uri, log)
        yield uri
    finally:
        listed = subprocess.run(
            ["virsh", "-c", uri, "list", "--all", "--name"], capture_output=True, text=True
        )
        for name in filter(None, listed.stdout.split()):
            subprocess.run(["virsh", "-c", uri, "destroy", name], capture_output=True)
            subprocess.run(["virsh", "-c", uri, "undefine", "--nvram", name], capture_output=True)
        _stop(root)
