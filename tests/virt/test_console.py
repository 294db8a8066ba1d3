"""Reading a console log's tail: bounded memory, whole lines, any bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcifleet.virt import InvalidVirtSpec
from pcifleet.virt.console import MAX_CONSOLE_BYTES, append_line, read_tail


def test_lines_from_the_end(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    log.write_text("one\ntwo\nthree\n")
    assert read_tail(log, None) == "one\ntwo\nthree\n"
    assert read_tail(log, 2) == "two\nthree\n"
    assert read_tail(log, 0) == ""
    assert read_tail(log, 99) == "one\ntwo\nthree\n"


def test_an_unfinished_last_line_is_kept(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    log.write_text("login: ")
    assert read_tail(log, 1) == "login: "


def test_a_huge_log_is_read_only_from_its_last_mebibyte(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    line = b"x" * 99 + b"\n"
    log.write_bytes(b"FIRST\n" + line * (3 * MAX_CONSOLE_BYTES // len(line)) + b"LAST\n")
    out = read_tail(log, None)
    assert len(out.encode()) <= MAX_CONSOLE_BYTES
    assert out.endswith("LAST\n") and "FIRST" not in out
    # The cut never leaves half a line at the start.
    assert out.startswith("x" * 99 + "\n")


def test_a_small_cap_and_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    log.write_bytes(b"aaaa\nbb\xffb\ncc\n")
    assert read_tail(log, None, cap=9) == "bb\ufffdb\ncc\n"


@pytest.mark.parametrize("length", [-1, 1.0, "3", False])
def test_bad_lengths(tmp_path: Path, length: object) -> None:
    with pytest.raises(InvalidVirtSpec, match="length"):
        read_tail(tmp_path / "c.log", length)  # type: ignore[arg-type]


def test_append_line_creates_the_log_and_adds_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "console" / "c.log"
    append_line(log, "first")
    append_line(log, "second\n")
    assert log.read_text() == "first\nsecond\n"
