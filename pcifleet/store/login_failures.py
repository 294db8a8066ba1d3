"""Failed password logins counted per key (a user name, a client address) in a
fixed window, in the database so every controller sharing it applies one limit.

A key that reached its limit is refused until its window ends, before any
password is hashed: a guesser neither learns anything nor costs argon2 time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pcifleet.store.cloud import LoginFailure


@dataclass(frozen=True)
class LoginLimit:
    """At most ``failures`` failed logins per key in ``window_seconds``."""

    failures: int
    window_seconds: int


@dataclass(frozen=True)
class Standing:
    """What the counts say of a login about to be tried."""

    # the first key over its limit and the seconds until its window ends
    blocked: tuple[str, int] | None
    # the keys that have failures counted
    counted: frozenset[str]


def standing(session: Session, limits: dict[str, LoginLimit], now: datetime) -> Standing:
    rows = list(session.scalars(select(LoginFailure).where(LoginFailure.key.in_(list(limits)))))
    blocked = None
    for row in rows:
        limit = limits[row.key]
        ends = row.window_start + timedelta(seconds=limit.window_seconds)
        if row.failures >= limit.failures and ends > now:
            blocked = row.key, max(1, int((ends - now).total_seconds() + 0.999))
            break
    return Standing(blocked, frozenset(row.key for row in rows))


def record_failure(session: Session, limits: dict[str, LoginLimit], now: datetime) -> None:
    """Count one failure against every key; a key whose window ended starts anew.

    Commits. Two controllers inserting one new key at once: the loser counts again
    on the row the winner made.
    """
    for _ in range(3):
        try:
            for key, limit in limits.items():
                row = session.get(LoginFailure, key, with_for_update=True)
                if row is None:
                    session.add(LoginFailure(key=key, failures=1, window_start=now))
                elif row.window_start + timedelta(seconds=limit.window_seconds) <= now:
                    row.failures, row.window_start = 1, now
                else:
                    row.failures += 1
            session.commit()
            return
        except IntegrityError:
            session.rollback()


def forget(session: Session, key: str) -> None:
    """A good login clears its user's count (not its address's). Commits."""
    session.execute(delete(LoginFailure).where(LoginFailure.key == key))
    session.commit()
