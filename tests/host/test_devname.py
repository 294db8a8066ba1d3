"""devname checks: unsafe netdev names are refused, naming the field."""

from __future__ import annotations

import pytest

from pcifleet.host.devname import check_devname
from pcifleet.host.inventory import Inventory
from pcifleet.pci import InvalidDeviceSpec


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../../../etc", "must not contain"),
        ("eth0/../..", "must not contain"),
        ("..", "must not contain"),
        ("eth\0", "must not contain"),
        ("a" * 16, "longer than the kernel's limit of 15 bytes"),
        ("é" * 8, "longer than the kernel's limit of 15 bytes"),  # 16 bytes in UTF-8
        ("", "non-empty"),
    ],
)
def test_unsafe_names_are_refused(name: str, why: str) -> None:
    with pytest.raises(InvalidDeviceSpec, match="devname") as err:
        check_devname(name)
    assert why in str(err.value)
    # Inventory.find (pcifleet inventory --explain) takes the same check.
    with pytest.raises(InvalidDeviceSpec, match="devname") as err:
        Inventory([]).find(name)
    assert why in str(err.value)


def test_fifteen_bytes_is_fine() -> None:
    assert check_devname("a" * 15) == "a" * 15
