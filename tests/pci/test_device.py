import pytest

from pcifleet.pci import DevType, InvalidPciDevice, PciAddress, PciDevice

VF = {
    "address": "0000:0A:10.2",
    "vendor_id": "0x8086",
    "product_id": "154C",
    "dev_type": "type-VF",
    "parent_addr": "0000:0a:00.0",
    "numa_node": 1,
    "ifname": "ens1f0v1",
    "driver": "iavf",
}


def test_keyword_construction_normalises() -> None:
    dev = PciDevice(**VF)
    assert dev.address == PciAddress.parse("0000:0a:10.2")
    assert (dev.vendor_id, dev.product_id) == ("8086", "154c")
    assert dev.dev_type is DevType.VF
    assert dev.parent_addr == PciAddress.parse("0000:0a:00.0")
    assert dev.vendor_product == "8086:154c"


def test_dict_round_trip() -> None:
    dev = PciDevice.from_dict(VF)
    again = PciDevice.from_dict(dev.to_dict())
    assert again == dev
    assert dev.to_dict()["address"] == "0000:0a:10.2"
    assert dev.to_dict()["dev_type"] == "type-VF"


def test_negative_numa_node_means_unknown() -> None:
    assert (
        PciDevice(
            address="0000:00:04.0", vendor_id="1af4", product_id="1000", numa_node=-1
        ).numa_node
        is None
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"vendor_id": "808g"}, "vendor_id"),
        ({"vendor_id": "18086"}, "vendor_id"),
        ({"product_id": 0x154C}, "product_id"),
        ({"dev_type": "type-XX"}, "dev_type"),
        ({"parent_addr": None}, "parent_addr"),
        ({"address": "0000:0a:20.0"}, "slot"),
        ({"numa_node": "1"}, "numa_node"),
        ({"ifname": "../etc"}, "ifname"),
        ({"ifname": "a" * 16}, "ifname"),
        ({"extra": {"mac": 5}}, "extra"),
    ],
)
def test_bad_fields_are_named(changes: dict, field: str) -> None:
    with pytest.raises(InvalidPciDevice, match=field):
        PciDevice.from_dict({**VF, **changes})


def test_parent_only_for_vfs() -> None:
    with pytest.raises(InvalidPciDevice, match="parent_addr"):
        PciDevice(
            address="0000:0a:00.0",
            vendor_id="8086",
            product_id="1572",
            dev_type="type-PF",
            parent_addr="0000:0b:00.0",
        )


def test_from_dict_rejects_unknown_and_missing_keys() -> None:
    with pytest.raises(InvalidPciDevice, match="colour"):
        PciDevice.from_dict({**VF, "colour": "red"})
    with pytest.raises(InvalidPciDevice, match="vendor_id"):
        PciDevice.from_dict({"address": "0000:00:00.0", "product_id": "0001"})
    with pytest.raises(InvalidPciDevice):
        PciDevice.from_dict(["not", "a", "mapping"])  # type: ignore[arg-type]
