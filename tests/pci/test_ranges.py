"""Index lists ("0-3,8"): what sysfs cpulists and vf_index specs are written in."""

import pytest

from pcifleet.pci import format_index_list, parse_index_list


class Bad(ValueError):
    pass


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("0-7", set(range(8))),
        ("0-3,8", {0, 1, 2, 3, 8}),
        (" 1 , 3 - 4 ", {1, 3, 4}),
        ("5", {5}),
        ("", set()),
        (7, {7}),
        ("2,2,1-2", {1, 2}),
    ],
)
def test_index_lists_parse(text: object, want: set[int]) -> None:
    assert parse_index_list(text, "f", 100, Bad) == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7-0", "range 7-0 is reversed"),
        ("1-", "'1-' is not N or N-M"),
        ("a-b", "'a-b' is not N or N-M"),
        ("0x3", "'0x3' is not N or N-M"),
        ("-1", "'-1' is not N or N-M"),
        ("1,,2", "'' is not N or N-M"),
        ("0-99999999", "is not N or N-M"),
        ("0-101", "101 is greater than the maximum 100"),
        ("1;rm", "is not N or N-M"),
        ("1" * 5000, "longer than"),
        (True, "must be a text"),
        (None, "must be a text"),
        (["0-3"], "must be a text"),
    ],
)
def test_hostile_index_lists_are_refused_naming_the_field(text: object, message: str) -> None:
    with pytest.raises(Bad) as err:
        parse_index_list(text, "property vf_index", 100, Bad)
    assert "property vf_index" in str(err.value)
    assert message in str(err.value)


def test_format_is_the_shortest_list_and_parses_back() -> None:
    values = {0, 1, 2, 3, 8, 10, 11}
    text = format_index_list(values)
    assert text == "0-3,8,10-11"
    assert parse_index_list(text, "f", 100, Bad) == values
    assert format_index_list([]) == ""
