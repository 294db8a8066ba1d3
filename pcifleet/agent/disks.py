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

A cold move's destination does not make a fresh overlay: ``adopt`` takes the
one the source handed over (downloaded to a temporary name here), points it at
this host's cached copy of the same image (``qemu-img rebase -u``: the image's
bytes are the same, only its path differs), grows it to a larger root disk
(``qemu-img resize``), and renames it into place. A placeholder travels the
same way, rewritten as JSON. A smaller root disk is refused: a disk never
shrinks, as in Nova.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pcifleet.agent.errors import TaskFailed
from pcifleet.virt.tasks.build import ROOT_GB_MAX
from pcifleet.virt.validate import check_uuid

GIB = 1 << 30
# qemu-img on a local file answers in milliseconds; a minute means a hung mount.
QEMU_IMG_TIMEOUT = 60.0
_DISK_NAME_RE = re.compile(r"([0-9a-f-]{36})\.qcow2")
# A placeholder is a line of JSON; anything longer is not one.
PLACEHOLDER_MAX = 64 * 1024
# A part file (a disk being made, or a moved one downloading) is written
# without pause; one untouched this long was left by a crash.
STALE_PART_SECONDS = 3600.0


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

    def ready_dir(self) -> Path:
        """``disks_dir``, made if missing (QEMU may pass through it, not list it)."""
        self.disks_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
        return self.disks_dir

    def path_of(self, server_uuid: str) -> Path:
        """Where server ``server_uuid``'s disk is (whether or not it exists)."""
        return self.disks_dir / f"{check_uuid(server_uuid)}.qcow2"

    def create(self, server_uuid: str, image: Path, image_format: str, root_gb: int) -> Path:
        """Make the server's disk backed by ``image``; returns its path.

        ``root_gb`` 0 gives the image's virtual size; a root disk smaller than
        the image is refused (the guest's filesystem would not fit), as Nova does.
        An existing disk of the server (a build handed out again) is replaced.
        """
        _check_root_gb(root_gb, image_format)
        image = Path(image).resolve()
        path = self.path_of(server_uuid)
        self.ready_dir()
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

    def adopt(
        self, server_uuid: str, handed: Path, image: Path, image_format: str, root_gb: int
    ) -> Path:
        """Make ``handed`` (a moved server's overlay, a temporary file in
        ``disks_dir``) the server's disk here: rebased onto ``image``, grown
        to ``root_gb`` when larger, renamed into place. Its path; on any
        failure ``handed`` is deleted and nothing is in place."""
        _check_root_gb(root_gb, image_format)
        path = self.path_of(server_uuid)
        image = Path(image).resolve()
        try:
            if self.qemu_img is None:
                self._adopt_placeholder(handed, image, image_format, root_gb)
            else:
                self._adopt_overlay(handed, image, image_format, root_gb)
            os.replace(handed, path)
        finally:
            Path(handed).unlink(missing_ok=True)
        return path

    def _adopt_overlay(self, handed: Path, image: Path, image_format: str, root_gb: int) -> None:
        # Read as qcow2 whatever its content says; anything else fails here.
        data = self.info(handed, "qcow2")
        specific = (data.get("format-specific") or {}).get("data") or {}
        if isinstance(specific, dict) and specific.get("data-file"):
            # Its guest data would live in another file of this host.
            raise TaskFailed(
                f"the moved disk keeps its data in an external file "
                f"({specific.get('data-file')!r}); refused"
            )
        self._image_size(image, image_format)  # the image is safe to back a disk
        self._run("rebase", "-q", "-u", "-f", "qcow2", "-F", image_format, "-b", str(image),
                  str(handed))  # fmt: skip
        size = _virtual_size(data, handed)
        wanted = _grown(size, root_gb)
        if wanted > size:
            self._run("resize", "-q", "-f", "qcow2", str(handed), str(wanted))

    def _adopt_placeholder(
        self, handed: Path, image: Path, image_format: str, root_gb: int
    ) -> None:
        try:
            with open(handed, "rb") as f:
                text = f.read(PLACEHOLDER_MAX + 1)
            data = json.loads(text) if len(text) <= PLACEHOLDER_MAX else None
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or "placeholder" not in data:
            raise TaskFailed(
                "the moved disk is not a placeholder disk, and this host has no "
                "qemu-img to read a real one: install qemu-utils"
            )
        size = _virtual_size({"virtual-size": data.get("virtual_size")}, handed)
        data.update(
            backing_file=str(image),
            backing_format=image_format,
            virtual_size=_grown(size, root_gb),
        )
        Path(handed).write_text(json.dumps(data) + "\n", encoding="utf-8")

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

    def remove_stale_parts(self, older_than: float = STALE_PART_SECONDS) -> list[str]:
        """Delete the hidden part files no one has written for ``older_than``
        seconds (a crash in the middle of making or downloading a disk); their
        names."""
        if not self.disks_dir.is_dir():
            return []
        removed = []
        now = time.time()
        for path in self.disks_dir.iterdir():
            if not (path.name.startswith(".") and path.name.endswith(".part")):
                continue
            try:
                if now - path.stat().st_mtime > older_than:
                    path.unlink()
                    removed.append(path.name)
            except OSError:
                continue  # gone meanwhile, or not ours to remove: the next sweep looks again
        return removed

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


def _check_root_gb(root_gb: int, image_format: str) -> None:
    if isinstance(root_gb, bool) or not isinstance(root_gb, int):
        raise TaskFailed(f"root disk size must be a whole number of GB, got {root_gb!r}")
    if not 0 <= root_gb <= ROOT_GB_MAX:
        raise TaskFailed(f"root disk of {root_gb} GB is outside 0..{ROOT_GB_MAX} GB")
    if image_format not in ("raw", "qcow2"):
        raise TaskFailed(f"image format {image_format!r} cannot back a qcow2 overlay")


def _virtual_size(data: dict[str, Any], path: Path) -> int:
    size = data.get("virtual-size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise TaskFailed(f"moved disk {path.name}: no virtual size in {data!r:.200}")
    return size


def _grown(size: int, root_gb: int) -> int:
    """A moved disk's size for a flavor of ``root_gb`` (0: as it is)."""
    wanted = root_gb * GIB
    if root_gb and wanted < size:
        raise TaskFailed(
            f"flavor root disk {root_gb} GB is smaller than the server's disk "
            f"({size} bytes): a disk is never shrunk"
        )
    return max(size, wanted)


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

    def adopt(
        self, server_uuid: str, handed: Path, image: Path, image_format: str, root_gb: int
    ) -> Path:
        Path(handed).unlink(missing_ok=True)
        raise TaskFailed("qemu-img not found on this host: install qemu-utils")
