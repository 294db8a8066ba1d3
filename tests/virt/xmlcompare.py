"""Is what we wrote still in what libvirt gives back?

libvirt adds things (``<alias>``, a guest ``<address>``, ``<target>``, defaults)
and may rewrite or drop input. ``missing(ours, theirs)`` lists every attribute,
text and child of ours that theirs lacks or changed; additions are allowed.
Children are matched by tag, in order (our 2nd ``<tag>`` to their 2nd ``<tag>``).
"""

from __future__ import annotations

from lxml import etree


def missing(ours: etree._Element, theirs: etree._Element, path: str = "") -> list[str]:
    here = f"{path}/{ours.tag!s}"
    if ours.tag != theirs.tag:
        return [f"{here}: libvirt has <{theirs.tag!s}> instead"]
    problems = []
    for name, value in ours.items():
        got = theirs.get(name)
        if got != value:
            problems.append(f"{here}/@{name!s}: wrote {value!r}, libvirt has {got!r}")
    text, got_text = (ours.text or "").strip(), (theirs.text or "").strip()
    if text and text != got_text:
        problems.append(f"{here}/text(): wrote {text!r}, libvirt has {got_text!r}")
    seen: dict[str, int] = {}
    for child in ours:
        tag = str(child.tag)
        index = seen.get(tag, 0)
        seen[tag] = index + 1
        candidates = theirs.findall(tag)
        if index >= len(candidates):
            problems.append(f"{here}/{tag}[{index}]: dropped by libvirt")
            continue
        problems.extend(missing(child, candidates[index], here))
    return problems


def device_counts(domain: etree._Element, tags: tuple[str, ...]) -> dict[str, int]:
    devices = domain.find("devices")
    assert devices is not None
    return {tag: len(devices.findall(tag)) for tag in tags}
