"""The rules behind lock and rebuild, as pure functions: who a lock holds and
who may lift it, which images a rebuild takes, and what a rebuilding server
shows from each state it may start in."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pcifleet.compute.context import Context
from pcifleet.compute.errors import BadRequest, Conflict
from pcifleet.compute.locks import ADMIN, OWNER, may_unlock, refuse_if_locked
from pcifleet.compute.rebuild import REBUILDABLE, check_image
from pcifleet.compute.states import TaskState, VmState, status_of

UUID = "6f1c8d2e-4b7a-4c3e-9d5f-0a1b2c3d4e5f"


def caller(project: str, *roles: str) -> Context:
    return Context("u", "user", project, "p", frozenset(roles or ("member",)))


def server(locked: bool = False, by: str | None = None) -> Any:
    return SimpleNamespace(uuid=UUID, project_id="demo", locked=locked, locked_by=by)


def test_a_locked_server_refuses_a_member_and_not_an_admin() -> None:
    with pytest.raises(Conflict, match=f"Instance {UUID} is locked"):
        refuse_if_locked(server(True, OWNER), caller("demo"))
    refuse_if_locked(server(True, ADMIN), caller("admin", "admin"))
    refuse_if_locked(server(False), caller("demo"))


@pytest.mark.parametrize(
    ("by", "who", "may"),
    [
        (OWNER, caller("demo"), True),
        (ADMIN, caller("demo"), False),
        (OWNER, caller("admin", "admin"), True),
        (ADMIN, caller("admin", "admin"), True),
        (None, caller("demo"), True),  # not locked: unlocking changes nothing
        (OWNER, caller("other"), False),  # another project's member (it cannot see it anyway)
    ],
)
def test_who_may_lift_a_lock(by: str | None, who: Context, may: bool) -> None:
    assert may_unlock(server(by is not None, by), who) is may


def image(**fields: Any) -> Any:
    defaults = {"id": "img", "status": "active", "min_ram": 0, "min_disk": 0}
    return SimpleNamespace(**{**defaults, **fields})


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"status": "queued"}, "is not active"),
        ({"min_ram": 2048}, "memory is too small"),
        ({"min_disk": 20}, "disk is too small"),
    ],
)
def test_an_image_the_flavor_cannot_take_is_refused(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        check_image(image(**fields), {"ram": 1024, "disk": 10})


def test_an_image_that_fits_is_taken_and_a_flavor_of_disk_0_takes_any() -> None:
    check_image(image(min_ram=1024, min_disk=10), {"ram": 1024, "disk": 10})
    check_image(image(min_disk=50), {"ram": 1024, "disk": 0})


def test_a_rebuild_starts_from_nova_s_states_and_shows_rebuild_from_each() -> None:
    assert {VmState.ACTIVE, VmState.STOPPED, VmState.ERROR} == REBUILDABLE
    for vm in REBUILDABLE:
        assert status_of(vm, TaskState.REBUILDING) == "REBUILD", vm
