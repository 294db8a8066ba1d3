"""Device states of the PCI model."""

from enum import StrEnum


class DeviceStatus(StrEnum):
    """``available -> claimed -> allocated -> available``; plus blocked and gone.

    ``unavailable``: blocked because its PF or one of its VFs is in use.
    ``removed``: gone from the host (kept for the record).
    """

    AVAILABLE = "available"
    CLAIMED = "claimed"
    ALLOCATED = "allocated"
    UNAVAILABLE = "unavailable"
    REMOVED = "removed"


IN_USE = frozenset({DeviceStatus.CLAIMED, DeviceStatus.ALLOCATED})
