"""Each server's own disk: a qcow2 overlay on the host's cached copy of its image.

Servers never write to the cached image: ``<disks_dir>/<server uuid>.qcow2`` is
made with ``qemu-img create -f qcow2 -F <image format> -b <image> <overlay>
<size>``, sized from the flavor's root disk (``root_gb``; 0 means the image's
virtual size, as Nova does), and removed with the server. Every ``qemu-img``
call of the agent is here, and each failure becomes ``TaskFailed`` naming the
command's complaint.

Two kinds of disk, picked by ``disks_for``:

- real overlays (``qemu-img`` must exist) for the ``libvirt`` driver, and for
  the ``xml`` driver whenever ``qemu-img`` is on PATH: an overlay costs a few
  milliseconds and no space, so simulated hosts stay fast and still prove the
  image opens and the size fits;
- a placeholder for the ``xml`` driver on a machine without ``qemu-img``: a
  small JSON file at the same path naming the backing file, its format and the
  size a real overlay would have had, so delete and sweep paths work the same.
  No guest ever reads it (the xml driver runs nothing).

An overlay is written under a temporary name and renamed into place, so a crash
never leaves a half-made file under a server's disk name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pcifleet.agent.errors import TaskFailed
from pcifleet.virt.tasks.build import ROOT_GB_MAX
from pcifleet.virt.validate import check_uuid

GIB = 1 << 30
# qemu-img on a local file answers in milliseconds; a minute means a hung mount.
QEMU_IMG_TIMEOUT = 60.0
_DISK_NAME_RE = re.compile(r"([0-9a-f-]{36})\.qcow2")


class Disks:
    """The overlays of one host, in ``disks_dir``.

    ``qemu_img`` is the command's path; None makes placeholders instead (see
    the module docstring for when that is allowed).
    """

    def __init__(self, disks_dir: Path, qemu_img: str | None) -> None:
        self.disks_dir = Path(disks_dir)
        self.qemu_img = qemu_img

    @property
    def real(self) -> bool:
        """Whether this makes real qcow2 overlays (not placeholders)."""
        return self.qemu_img is not None

    def path_of(self, server_uuid: str) -> Path:
        """Where server ``server_uuid``'s disk is (whether or not it exists)."""
        return self.disks_dir / f"{check_uuid(server_uuid)}.qcow2"

    def create(self, server_uuid: str, image: Path, image_format: str, root_gb: int) -> Path:
        """Make the server's disk backed by ``image``; returns its path.

        ``root_gb`` 0 gives the image's virtual size; a root disk smaller than
        the image is refused (the guest's filesystem would not fit), as Nova does.
        An existing disk of the server (a build handed out again) is replaced.
        """
        if isinstance(root_gb, bool) or not isinstance(root_gb, int):
            raise TaskFailed(f"root disk size must be a whole number of GB, got {root_gb!r}")
        if not 0 <= root_gb <= ROOT_GB_MAX:
            raise TaskFailed(f"root disk of {root_gb} GB is outside 0..{ROOT_GB_MAX} GB")
        if image_format not in ("raw", "qcow2"):
            raise TaskFailed(f"image format {image_format!r} cannot back a qcow2 overlay")
        image = Path(image).resolve()
        path = self.path_of(server_uuid)
        self.disks_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
        virtual = self._image_size(image, image_format)
        size = root_gb * GIB if root_gb else virtual
        if size < virtual:
            raise TaskFailed(
                f"flavor root disk {root_gb} GB is smaller than image {image.name}'s "
                f"virtual size {virtual} bytes"
            )
        fd, tmp = tempfile.mkstemp(dir=self.disks_dir, prefix=f".{path.name}.", suffix=".part")
        os.close(fd)
        try:
            if self.qemu_img is None:
                placeholder = {
                    "placeholder": "pcifleet xml driver; qemu-img was not installed",
                    "backing_file": str(image),
                    "backing_format": image_format,
                    "virtual_size": size,
                }
                Path(tmp).write_text(json.dumps(placeholder) + "\n", encoding="utf-8")
            else:
                self._run(
                    "create", "-q", "-f", "qcow2", "-F", image_format,
                    "-b", str(image), tmp, str(size),
                )  # fmt: skip
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return path

    def remove(self, server_uuid: str) -> bool:
        """Delete the server's disk; whether there was one."""
        path = self.path_of(server_uuid)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise TaskFailed(f"cannot remove disk {path}: {exc.strerror or exc}") from None
        return True

    def servers(self) -> set[str]:
        """The UUIDs of the servers that have a disk here."""
        if not self.disks_dir.is_dir():
            return set()
        found = (_DISK_NAME_RE.fullmatch(p.name) for p in self.disks_dir.iterdir())
        return {m.group(1) for m in found if m is not None}

    def info(self, path: Path, disk_format: str | None = None) -> dict[str, Any]:
        """``qemu-img info --output=json`` of ``path``.

        Give ``disk_format`` for any file from outside (an image): qemu-img then
        does not guess the format from the content, which a crafted raw image
        could otherwise steer.
        """
        args = ["info", "--output=json"]
        if disk_format is not None:
            args += ["-f", disk_format]
        out = self._run(*args, str(path))
        try:
            data = json.loads(out)
        except ValueError:
            raise TaskFailed(f"qemu-img info {path}: not JSON: {out[:200]!r}") from None
        if not isinstance(data, dict):
            raise TaskFailed(f"qemu-img info {path}: expected an object, got {out[:200]!r}")
        return data

    def _image_size(self, image: Path, image_format: str) -> int:
        """The image's virtual size in bytes, after checking it is safe to back a disk."""
        if self.qemu_img is None:
            # No qemu-img to read a qcow2 header: the file's size is the best we know.
            try:
                return image.stat().st_size
            except OSError as exc:
                raise TaskFailed(f"image {image}: {exc.strerror or exc}") from None
        data = self.info(image, image_format)
        if data.get("backing-filename") or data.get("full-backing-filename"):
            # An image chained to another file would let an uploader make the guest
            # read any file on this host through the backing chain.
            raise TaskFailed(
                f"image {image.name} has a backing file "
                f"({data.get('backing-filename')!r}); images must stand alone"
            )
        size = data.get("virtual-size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise TaskFailed(f"qemu-img info {image}: no virtual size in {data!r:.200}")
        return size

    def _run(self, *args: str) -> str:
        assert self.qemu_img is not None
        command = [self.qemu_img, *args]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=QEMU_IMG_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise TaskFailed(f"qemu-img {args[0]} took over {QEMU_IMG_TIMEOUT:.0f} s") from None
        except OSError as exc:
            raise TaskFailed(f"cannot run {self.qemu_img}: {exc.strerror or exc}") from None
        if done.returncode != 0:
            cause = (done.stderr or done.stdout).strip().splitlines()
            raise TaskFailed(
                f"qemu-img {args[0]} failed: {cause[-1] if cause else f'exit {done.returncode}'}"
            )
        return done.stdout


def disks_for(state_dir: Path, driver: str) -> Disks:
    """The disks of a host running virt driver ``driver``.

    ``libvirt`` needs real overlays: without ``qemu-img`` a build fails saying
    so. ``xml`` makes real ones when ``qemu-img`` exists, placeholders otherwise.
    """
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None and driver != "xml":
        return _MissingQemuImg(Path(state_dir) / "disks")
    return Disks(Path(state_dir) / "disks", qemu_img)


class _MissingQemuImg(Disks):
    """A real hypervisor's disks without ``qemu-img``: removing works, creating
    fails the build with what to install."""

    def __init__(self, disks_dir: Path) -> None:
        super().__init__(disks_dir, None)

    @property
    def real(self) -> bool:
        return True

    def create(self, server_uuid: str, image: Path, image_format: str, root_gb: int) -> Path:
        raise TaskFailed("qemu-img not found on this host: install qemu-utils")
