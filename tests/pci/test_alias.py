import pytest

from pcifleet.pci import DevType, InvalidAlias, NumaPolicy, parse_aliases

GPU = '{"name": " gpu ", "vendor_id": "10DE", "product_id": "1db4", "device_type": "type-PCI"}'


def test_alias_fields_are_read_and_normalised() -> None:
    aliases = parse_aliases([GPU])
    (alias,) = aliases["gpu"]
    assert (alias.vendor_id, alias.product_id) == ("10de", "1db4")
    assert alias.device_type is DevType.PCI
    assert alias.numa_policy is NumaPolicy.LEGACY
    assert alias.capability_type == "pci"


def test_every_nova_key_is_accepted() -> None:
    (alias,) = parse_aliases(
        {
            "name": "nic",
            "vendor_id": "8086",
            "product_id": "154c",
            "device_type": "type-VF",
            "numa_policy": "preferred",
            "capability_type": "pci",
            "resource_class": "CUSTOM_NIC",
            "traits": "HW_NIC_SRIOV, CUSTOM_FAST",
            "live_migratable": "yes",
        }
    )["nic"]
    assert alias.numa_policy is NumaPolicy.PREFERRED
    assert alias.traits == ("HW_NIC_SRIOV", "CUSTOM_FAST")
    assert alias.live_migratable is True
    assert alias.spec() == {
        "vendor_id": "8086",
        "product_id": "154c",
        "dev_type": "type-VF",
        "live_migratable": "true",
    }


def test_same_name_means_any_of() -> None:
    aliases = parse_aliases(
        [
            {"name": "gpu", "vendor_id": "10de", "product_id": "1db4"},
            '[{"name": "gpu", "vendor_id": "10de", "product_id": "1eb8"}]',
        ]
    )
    assert [a.product_id for a in aliases["gpu"]] == ["1db4", "1eb8"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"vendor_id": "10de", "product_id": "1db4"}, "name is required"),
        ({"name": "  ", "vendor_id": "10de", "product_id": "1db4"}, "name is required"),
        ({"name": "gpu", "product_id": "1db4"}, "alias 'gpu': vendor_id is required"),
        ({"name": "gpu", "vendor_id": "10de"}, "product_id is required"),
        (
            {"name": "gpu", "vendor_id": "10d", "product_id": "1db4"},
            "vendor_id ('10d') must be exactly 4 hex",
        ),
        ({"name": "gpu", "vendor_id": "0x10de", "product_id": "1db4"}, "vendor_id"),
        ({"name": "gpu", "vendor_id": "10de", "product_id": 7604}, "product_id"),
        (
            {"name": "gpu", "vendor_id": "10de", "product_id": "1db4", "device_type": "GPU"},
            "device_type",
        ),
        (
            {"name": "gpu", "vendor_id": "10de", "product_id": "1db4", "numa_policy": "strict"},
            "numa_policy",
        ),
        (
            {"name": "gpu", "vendor_id": "10de", "product_id": "1db4", "capability_type": "usb"},
            "capability_type",
        ),
        (
            {"name": "gpu", "vendor_id": "10de", "product_id": "1db4", "colour": "green"},
            "unknown key(s) colour",
        ),
        (
            {
                "name": "gpu",
                "vendor_id": "10de",
                "product_id": "1db4",
                "live_migratable": "perhaps",
            },
            "live_migratable",
        ),
        ("not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
    ],
)
def test_rejected_aliases_name_alias_and_field(entry: object, message: str) -> None:
    with pytest.raises(InvalidAlias) as exc:
        parse_aliases([entry])
    assert message in str(exc.value)


@pytest.mark.parametrize("key", ["device_type", "numa_policy"])
def test_conflicts_under_one_name_are_rejected(key: str) -> None:
    values = {"device_type": ("type-PCI", "type-PF"), "numa_policy": ("required", "legacy")}[key]
    with pytest.raises(InvalidAlias, match=f"alias 'gpu': {key}"):
        parse_aliases(
            [
                {"name": "gpu", "vendor_id": "10de", "product_id": "1db4", key: values[0]},
                {"name": "gpu", "vendor_id": "10de", "product_id": "1eb8", key: values[1]},
            ]
        )
