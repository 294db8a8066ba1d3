"""A bell the agents' task feed waits on: rung after a transaction of this
process that added tasks commits, naming the hosts they are for.

The feed answers an agent's long-poll as soon as its host has work, without
reading the tasks table over and over while it waits. A task another process
added (several API processes on one database) rings nothing here; the feed
still looks at the table now and then for those.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

from pcifleet.store.models import Task

_HOSTS = "pcifleet_task_hosts"
Listener = Callable[[], None]


class TaskBell:
    """Listeners per host, called (from any thread) when its tasks change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[str, set[Listener]] = {}

    def listen(self, host: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` whenever ``host`` gets tasks; returns the undo."""
        with self._lock:
            self._listeners.setdefault(host, set()).add(listener)

        def stop() -> None:
            with self._lock:
                listeners = self._listeners.get(host)
                if listeners is not None:
                    listeners.discard(listener)
                    if not listeners:
                        del self._listeners[host]

        return stop

    def ring(self, hosts: Iterable[str]) -> None:
        with self._lock:
            called = [fn for h in set(hosts) for fn in self._listeners.get(h, ())]
        for fn in called:
            fn()


BELL = TaskBell()


@event.listens_for(Task, "after_insert")
def _task_added(_mapper: Any, _conn: Any, task: Task) -> None:
    session = object_session(task)
    if session is not None and task.host:
        session.info.setdefault(_HOSTS, set()).add(task.host)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    hosts = session.info.pop(_HOSTS, None)
    if hosts:
        BELL.ring(hosts)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_HOSTS, None)
