"""A domain's serial console log: where it is written and reading its tail.

pcifleet domains send the serial console to a file (``<log file=...>`` under the
pty serial, so ``virsh console`` keeps working). Reading it must not let a log
of any size fill memory: only the last ``MAX_CONSOLE_BYTES`` are ever read.
"""

from __future__ import annotations

import os
from pathlib import Path

from pcifleet.virt.errors import InvalidVirtSpec
from pcifleet.virt.xmlutil import Element

# Nova's get_console_output keeps the last 100 KiB; a little more room here still
# keeps one request small however large the log has grown.
MAX_CONSOLE_BYTES = 1 << 20


def check_length(length: object) -> int | None:
    """``length`` as a line count (None: all); refuses negatives and non-integers."""
    if length is None:
        return None
    if not isinstance(length, int) or isinstance(length, bool):
        raise InvalidVirtSpec("length", f"must be a whole number of lines or null, got {length!r}")
    if length < 0:
        raise InvalidVirtSpec("length", f"must not be negative, got {length}")
    return length


def read_tail(
    path: str | os.PathLike[str], length: int | None, cap: int = MAX_CONSOLE_BYTES
) -> str:
    """The last ``length`` lines (all when None) of the last ``cap`` bytes of ``path``.

    Raises ``OSError`` when the file cannot be read. Bytes that are not UTF-8
    (a guest prints what it likes) come back as U+FFFD.
    """
    length = check_length(length)
    if length == 0:
        return ""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - cap)
        f.seek(start)
        data = f.read(cap)
    if start > 0:
        # The cut fell inside a line: drop its tail end rather than return half a line.
        newline = data.find(b"\n")
        if newline >= 0:
            data = data[newline + 1 :]
    lines = data.decode("utf-8", errors="replace").splitlines(keepends=True)
    if length is not None:
        lines = lines[-length:]
    return "".join(lines)


def console_log_of(root: Element) -> str | None:
    """The file a parsed domain writes its first serial console to, if any."""
    for serial in root.iterfind("devices/serial"):
        log = serial.find("log")
        if log is not None and log.get("file"):
            return log.get("file")
        source = serial.find("source")
        if serial.get("type") == "file" and source is not None and source.get("path"):
            return source.get("path")
    return None


def append_line(path: Path, line: str) -> None:
    """Append one line to a console log, creating it (and its directory) if needed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_APPEND: each line lands whole at the end even with another writer.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
    finally:
        os.close(fd)
