"""Index lists as Linux writes them: ``"0-3,8,10-11"``.

The same syntax names a node's CPUs in sysfs (``cpulist``) and the VFs a
device spec takes (``vf_index``), so one parser serves both. It refuses what a
typo or an attacker could write (reversed ranges, junk, numbers beyond the
limit, lists so long they would cost memory) with a message naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# One number: decimal digits only (no sign, no spaces inside, no "0x").
_NUMBER = r"[0-9]{1,7}"
_ITEM = re.compile(rf"\s*({_NUMBER})\s*(?:-\s*({_NUMBER})\s*)?")
# Longer texts are not index lists anyone writes by hand or reads from sysfs.
MAX_TEXT = 4096


def parse_index_list(
    text: object, field: str, maximum: int, error: type[ValueError]
) -> frozenset[int]:
    """The indexes ``text`` names, each from 0 to ``maximum``; raises ``error``.

    An empty text names none (sysfs writes an empty cpulist for a node
    without CPUs).
    """
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise error(f"{field} must be a text like '0-3,8', got {type(text).__name__}")
    if isinstance(text, int):
        text = str(text)
    if len(text) > MAX_TEXT:
        raise error(f"{field} is longer than {MAX_TEXT} characters")
    out: set[int] = set()
    if not text.strip():
        return frozenset()
    for part in text.split(","):
        m = _ITEM.fullmatch(part)
        if m is None:
            raise error(f"{field} ({text[:80]!r}): {part.strip()[:40]!r} is not N or N-M")
        low = int(m.group(1))
        high = low if m.group(2) is None else int(m.group(2))
        if low > high:
            raise error(f"{field} ({text[:80]!r}): range {low}-{high} is reversed")
        if high > maximum:
            raise error(f"{field} ({text[:80]!r}): {high} is greater than the maximum {maximum}")
        out.update(range(low, high + 1))
    return frozenset(out)


def format_index_list(indexes: Iterable[int]) -> str:
    """The shortest ``"0-3,8"`` text for a set of indexes."""
    values = sorted(set(indexes))
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts)
