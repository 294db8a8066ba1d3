"""Files and directories only their owner may read: the SQLite database holds
password hashes and the image files are tenants' data, so neither is left to
the umask (0644 on most systems).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
# A directory QEMU (libvirt's own user) must pass through to reach the disks
# below it: others may enter it but not list it.
TRAVERSABLE_DIR_MODE = 0o711


def private_dir(path: Path, *, traversable: bool = False) -> Path:
    """Make ``path`` (and missing parents) owner-only; an existing one is left
    as it is unless it is more open than that and ours to change."""
    mode = TRAVERSABLE_DIR_MODE if traversable else DIR_MODE
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    _narrow(path, mode)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if missing, and narrow it to 0600."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    _narrow(path, FILE_MODE)
    return path


def open_private(path: Path) -> int:
    """A new file descriptor writing ``path`` (truncated), created 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # an existing file keeps its mode through O_CREAT
    return fd


def _narrow(path: Path, mode: int) -> None:
    """Take away every permission beyond ``mode``; never widen, never fail on
    a path someone else owns (an operator's /var/lib directory)."""
    try:
        st = path.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o777 & ~mode:
            path.chmod(st.st_mode & 0o777 & mode)
    except OSError:
        pass
