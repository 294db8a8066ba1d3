"""The task bell rings for the hosts of tasks a committed transaction added,
and only after the commit."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pcifleet.store.models import Task
from pcifleet.store.task_bell import BELL


def test_a_committed_task_rings_its_host_and_a_rolled_back_one_does_not(
    engine: Engine,
) -> None:
    rung: list[str] = []
    stop_a = BELL.listen("bell-a", lambda: rung.append("bell-a"))
    stop_b = BELL.listen("bell-b", lambda: rung.append("bell-b"))
    try:
        with Session(engine) as session:
            session.add(Task(host="bell-a", kind="power", state="pending", payload={}))
            session.flush()
            assert rung == []  # not before the commit: the feed would not see it yet
            session.rollback()
        assert rung == []
        with Session(engine) as session, session.begin():
            session.add(Task(host="bell-a", kind="power", state="pending", payload={}))
            session.add(Task(host="bell-a", kind="power", state="pending", payload={}))
        assert rung == ["bell-a"]  # once per transaction and host
        stop_a()
        with Session(engine) as session, session.begin():
            session.add(Task(host="bell-a", kind="power", state="pending", payload={}))
            session.add(Task(host="bell-b", kind="power", state="pending", payload={}))
        assert rung == ["bell-a", "bell-b"]
    finally:
        stop_a()
        stop_b()
