"""Times as the OpenStack APIs write them, whatever the instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pcifleet.compute.context import timestamp


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 11, 28, 1, 2, 3, 999999, tzinfo=UTC),
        datetime(2026, 1, 9, 23, 59, 59, tzinfo=UTC),
        datetime(999, 12, 31, 0, 0, 0, 1, tzinfo=UTC),  # years below 1000 keep four digits
        datetime(2026, 3, 4, 5, 6, 7),  # naive: read as UTC already
        datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_second_precision_with_z_as_isoformat_gives(when: datetime) -> None:
    # the wall fields as stored, cut to the second; the offset is never written
    assert timestamp(when) == when.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
