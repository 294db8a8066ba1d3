import pytest

from pcifleet.pci import DevType, HostLayout, InvalidPciDevice, PciAddress

from .sample import sample_layout


def test_sample_host_has_two_nics_of_64_vfs_and_two_gpus() -> None:
    devices = sample_layout().devices()
    assert len(devices) == 2 + 128 + 2
    vfs = [d for d in devices if d.dev_type is DevType.VF]
    assert {d.vendor_product for d in vfs} == {"8086:154c"}
    assert {d.numa_node for d in vfs} == {0, 1}
    gpus = [d for d in devices if d.dev_type is DevType.PCI]
    assert [d.vendor_product for d in gpus] == ["10de:1db4", "10de:1db4"]


def test_vf_addresses_follow_offset_and_stride() -> None:
    nic = sample_layout().nics[0]
    assert str(nic.vf_address(0)) == "0000:3b:02.0"
    assert str(nic.vf_address(63)) == "0000:3b:09.7"
    assert nic.vf_ifname(5) == "ens1f0v5"


def test_vfs_name_their_parent_and_get_distinct_macs() -> None:
    devices = sample_layout().devices()
    vfs = [d for d in devices if d.parent_addr == PciAddress.parse("0000:3b:00.0")]
    assert len(vfs) == 64
    assert len({d.extra["mac"] for d in vfs}) == 64


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (
            {
                "nics": [
                    {
                        "address": "0000:3b:00.0",
                        "vendor_id": "8086",
                        "product_id": "1572",
                        "vf_product_id": "154c",
                        "numvfs": 8,
                        "totalvfs": 4,
                    }
                ]
            },
            "numvfs (8)",
        ),
        ({"nics": [{"address": "bad"}]}, "nics[0]"),
        (
            {
                "nics": [
                    {
                        "address": "0000:ff:00.0",
                        "vendor_id": "8086",
                        "product_id": "1572",
                        "vf_product_id": "154c",
                        "numvfs": 64,
                        "vf_offset": 4096,
                    }
                ]
            },
            "beyond bus ff",
        ),
        (
            {
                "devices": [
                    {"address": "0000:5e:00.0", "vendor_id": "10de", "product_id": "1db4", "x": 1}
                ]
            },
            "unknown key(s) x",
        ),
        (
            {
                "devices": [
                    {"address": "0000:5e:00.0", "vendor_id": "10de", "product_id": "1db4"},
                    {"address": "0000:5e:00.0", "vendor_id": "10de", "product_id": "1db4"},
                ]
            },
            "twice",
        ),
        ({"hostname": ""}, "hostname"),
        ({"nics": {}}, "lists"),
        ({"pci": {"device_spec": 5}}, "[pci] device_spec must be a list"),
        ({"pci": {"alias": "gpu"}}, "[pci] alias must be a list"),
    ],
)
def test_bad_layouts_are_rejected(layout: dict, message: str) -> None:
    with pytest.raises(InvalidPciDevice) as exc:
        HostLayout.from_dict(layout)
    assert message in str(exc.value)
