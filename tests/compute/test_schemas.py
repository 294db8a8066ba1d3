"""The NUL check every input body goes through."""

from __future__ import annotations

from typing import Any

import pytest

from pcifleet.compute.schemas import has_nul, nul_path


def deep(levels: int, leaf: Any) -> Any:
    body: Any = leaf
    for _ in range(levels):
        body = {"a": [body]}
    return body


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"server": {"name": "vm\x00"}}, "server.name"),
        ({"server": {"networks": [{"port": "p"}, {"uuid": "\x00"}]}}, "server.networks[1].uuid"),
        ({"tags": {"k\x00": "v"}}, "tags.'k\\x00'"),
        ("\x00", "request body"),
        (deep(5000, "x\x00"), None),  # only the path is long; checked below
    ],
)
def test_a_nul_anywhere_is_found_and_named(body: Any, path: str | None) -> None:
    assert has_nul(body)
    found = nul_path(body)
    assert found is not None
    if path is not None:
        assert found == path


@pytest.mark.parametrize(
    "body",
    [
        {"server": {"name": "vm", "networks": [{"port": "p"}], "min_count": 1, "x": None}},
        deep(5000, "fine"),
        [1, 2.5, True, None, ["\\x00 is only text here"]],
        {},
    ],
)
def test_bodies_without_a_nul_pass(body: Any) -> None:
    assert not has_nul(body)
    assert nul_path(body) is None
