"""Task models never raise anything but ``InvalidTask``, whatever payload they get,
and what they accept survives ``to_dict`` / ``from_dict`` unchanged."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pcifleet.virt.tasks import (
    BuildTask,
    ConsoleTask,
    DeleteTask,
    InvalidTask,
    MoveSourceTask,
    PowerTask,
)
from tests.virt.test_tasks import BUILD, UUID

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
hostile = (
    json_values
    | st.text(min_size=300, max_size=2000)
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from(
        [
            "../../etc/passwd",
            "0000:zz:02.1",
            "ffff:ff:1f.7",
            "-1",
            "",
            "\x00",
            "8086:",
            UUID.upper(),
            "type-VF",
            "direct",
            "macvtap",
            "direct-physical",
            "802.1qbh",
            "hostdev_physical",
        ]
    )
)
REMOVE = object()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


# a cold move's build: a boot's, naming the disk its source handed over
MOVE_BUILD = {**BUILD, "disk": {"migration": UUID, "sha256": "ab" * 32, "size": 1 << 20}}
PATHS = _paths(MOVE_BUILD)


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return data if value is REMOVE else value
    node = data
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return data  # an earlier change replaced what this path went through
    key = path[-1]
    fits = isinstance(node, dict) and isinstance(key, str)
    fits = fits or (isinstance(node, list) and isinstance(key, int) and key < len(node))
    if not fits:
        return data
    if value is not REMOVE:
        node[key] = value
    elif not isinstance(node, dict) or key in node:
        del node[key]
    return data


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(PATHS), hostile | st.just(REMOVE)), max_size=4))
def test_build_only_raises_its_error_and_round_trips(changes: list[tuple[Any, Any]]) -> None:
    data: Any = copy.deepcopy(MOVE_BUILD)
    for path, value in changes:
        data = _set(data, path, value)
    try:
        task = BuildTask.from_dict(data)
    except InvalidTask:
        return
    assert BuildTask.from_dict(task.to_dict()) == task
    for port in task.ports:
        if port.sriov:
            # InvalidVirtSpec: judged where the domain is built, as before
            with contextlib.suppress(ValueError):
                port.interface()


small_keys = st.sampled_from(
    ["instance", "action", "timeout", "length", "uuid", "name", "migration"]
)
instances = (
    st.fixed_dictionaries({"uuid": st.just(UUID) | hostile}, optional={"name": hostile}) | hostile
)


@settings(max_examples=300)
@given(
    st.dictionaries(small_keys, hostile, max_size=4)
    | st.fixed_dictionaries(
        {
            "instance": instances,
            "action": st.sampled_from(["stop", "start", "reboot_soft"]) | hostile,
        },
        optional={
            "timeout": st.floats() | hostile,
            "length": st.integers() | hostile,
            "migration": st.just(UUID) | hostile,
        },
    )
    | hostile
)
def test_small_tasks_only_raise_their_error_and_round_trip(data: Any) -> None:
    for model in (DeleteTask, PowerTask, ConsoleTask, MoveSourceTask):
        try:
            task = model.from_dict(data)
        except InvalidTask:
            continue
        assert model.from_dict(task.to_dict()) == task
