import pytest

from pcifleet.pci import InvalidPciAddress, PciAddress


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0000:0a:10.2", "0000:0a:10.2"),
        ("0000:0A:1F.7", "0000:0a:1f.7"),
        ("FFFF:ff:00.0", "ffff:ff:00.0"),
        ("  0000:3b:00.0\n", "0000:3b:00.0"),
    ],
)
def test_parse_gives_canonical_lower_case(text: str, canonical: str) -> None:
    assert str(PciAddress.parse(text)) == canonical


def test_parse_reads_fields_as_hex() -> None:
    addr = PciAddress.parse("0001:3b:1f.7")
    assert (addr.domain, addr.bus, addr.slot, addr.function) == (1, 0x3B, 0x1F, 7)


@pytest.mark.parametrize(
    ("text", "field"),
    [("0000:00:20.0", "slot"), ("0000:00:00.8", "function"), ("0000:00:ff.0", "slot")],
)
def test_out_of_range_names_the_field(text: str, field: str) -> None:
    with pytest.raises(InvalidPciAddress, match=field) as exc:
        PciAddress.parse(text)
    assert text in str(exc.value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0a:00.1",
        "00000:00:00.0",
        "0000:000:00.0",
        "0000:00:00",
        "0000:00:00.",
        "g000:00:00.0",
        "0000-00-00.0",
        "0000:00:00.0.1",
        "0000:00:00.0 x",
    ],
)
def test_malformed_text_is_rejected(text: str) -> None:
    with pytest.raises(InvalidPciAddress, match="PCI address"):
        PciAddress.parse(text)


@pytest.mark.parametrize("value", [None, 5, b"0000:00:00.0", ["0000:00:00.0"]])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(InvalidPciAddress):
        PciAddress.parse(value)


def test_invalid_error_is_a_value_error() -> None:
    assert issubclass(InvalidPciAddress, ValueError)


def test_constructor_enforces_limits() -> None:
    with pytest.raises(InvalidPciAddress, match="bus"):
        PciAddress(0, 0x100, 0, 0)


def test_addresses_order_and_hash() -> None:
    a, b = PciAddress.parse("0000:0a:00.1"), PciAddress.parse("0000:0a:01.0")
    assert a < b
    assert {a, PciAddress.parse("0000:0A:00.1")} == {a}


def test_routing_id_round_trip() -> None:
    addr = PciAddress.parse("0000:3b:02.5")
    assert PciAddress.from_routing_id(0, addr.routing_id) == addr


def test_fields_are_zero_padded_hex() -> None:
    assert PciAddress.parse("0000:0a:01.2").fields() == {
        "domain": "0000",
        "bus": "0a",
        "slot": "01",
        "function": "2",
    }
