"""Compare-and-swap on a server's state: the one way any state changes.

``load`` reads what a server is now; ``swap`` writes new states only if the row
still holds exactly what was read (vm_state and task_state), in the caller's
transaction. Two requests racing for one server both read the same state, and
the database lets one swap win: the loser sees ``False`` and must not act. On
SQLite the first write takes the database's write lock; on PostgreSQL the row
lock makes the second UPDATE re-check its WHERE against the committed row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from pcifleet.compute.states import PowerState, TaskState, VmState, status_of
from pcifleet.store.models import instances_table as I
from pcifleet.store.models import utcnow

# "leave this column as it is" for swap's keyword arguments
KEEP: Any = object()


@dataclass(frozen=True)
class Seen:
    """A server's state as read, the expectation a swap is guarded by."""

    uuid: str
    vm_state: VmState
    task_state: TaskState | None
    power_state: PowerState
    host: str | None
    vcpus: int
    memory_mb: int
    name: str
    project_id: str | None
    user_id: str | None
    updated_at: datetime


def _conn(bind: Session | Connection) -> Connection:
    return bind.connection() if isinstance(bind, Session) else bind


def load(bind: Session | Connection, uuid: str) -> Seen | None:
    """The server's state now (in the caller's transaction), or None."""
    row = (
        _conn(bind)
        .execute(
            select(
                I.c.uuid,
                I.c.vm_state,
                I.c.task_state,
                I.c.power_state,
                I.c.host,
                I.c.vcpus,
                I.c.memory_mb,
                I.c.name,
                I.c.project_id,
                I.c.user_id,
                I.c.updated_at,
            ).where(I.c.uuid == uuid)
        )
        .first()
    )
    if row is None:
        return None
    return Seen(
        uuid=row.uuid,
        vm_state=VmState(row.vm_state),
        task_state=TaskState(row.task_state) if row.task_state else None,
        power_state=PowerState(row.power_state),
        host=row.host,
        vcpus=row.vcpus,
        memory_mb=row.memory_mb,
        name=row.name,
        project_id=row.project_id,
        user_id=row.user_id,
        updated_at=row.updated_at,
    )


def swap(
    bind: Session | Connection,
    seen: Seen,
    *,
    vm_state: VmState | None = None,
    task_state: TaskState | None = KEEP,
    power_state: PowerState | None = None,
    **values: Any,
) -> bool:
    """Move the server on from ``seen``; False (and nothing written) when it moved
    on already. ``values`` are further columns to set (host, fault...)."""
    vm = vm_state or seen.vm_state
    task = seen.task_state if task_state is KEEP else task_state
    values = {k: v for k, v in values.items() if v is not KEEP}
    values.update(
        vm_state=vm.value,
        task_state=task.value if task else None,
        status=status_of(vm, task),
        updated_at=utcnow(),
    )
    if power_state is not None:
        values["power_state"] = int(power_state)
    expected_task = seen.task_state.value if seen.task_state else None
    done = _conn(bind).execute(
        update(I)
        .where(
            I.c.uuid == seen.uuid,
            I.c.vm_state == seen.vm_state.value,
            I.c.task_state.is_not_distinct_from(expected_task),
        )
        .values(**values)
    )
    return bool(done.rowcount == 1)
