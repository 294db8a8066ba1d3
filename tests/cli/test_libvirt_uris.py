"""``pcifleet up --libvirt-uri [HOST=]URI``: one daemon for all simulated hosts,
or one per host, and what live migration between them is set up with."""

from __future__ import annotations

import pytest

from pcifleet.cli.libvirt_uris import HostUris, migration_settings, parse_libvirt_uris


def test_one_uri_for_every_host_and_one_per_named_host() -> None:
    uris = parse_libvirt_uris(
        ["qemu:///system", "compute-2=qemu+tcp://127.0.0.3/system?no_verify=1"]
    )
    assert uris == HostUris(
        "qemu:///system", {"compute-2": "qemu+tcp://127.0.0.3/system?no_verify=1"}
    )
    assert uris.of("compute-1") == "qemu:///system"
    assert uris.of("compute-2").startswith("qemu+tcp://127.0.0.3/")
    # none given: the machine's system daemon
    assert parse_libvirt_uris([]).of("any") == "qemu:///system"
    # a socket URI's own '=' is not a host name
    sock = "qemu+unix:///system?socket=/tmp/lv2/libvirt-sock"
    assert parse_libvirt_uris([sock]).default == sock


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["system"], "not a libvirt URI"),
        (["compute-1=nonsense"], "not a libvirt URI"),
        (["qemu:///system", "qemu:///session"], "two URIs"),
        (["c1=qemu:///system", "c1=qemu:///system"], "given twice"),
        (["bad host=qemu:///system"], "not a host name"),
        (["../x=qemu:///system"], "not a host name"),
        (["\x00=qemu:///system"], "not a host name"),
    ],
)
def test_bad_values_are_refused_naming_the_option(values: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_libvirt_uris(values)
    assert "--libvirt-uri" in str(caught.value)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("qemu+tcp://127.0.0.3/system", ("qemu+tcp://%s/system", "127.0.0.3")),
        ("qemu+ssh://root@host-b:2222/system", ("qemu+ssh://root@%s:2222/system", "host-b")),
        ("qemu+tcp://[fd00::3]/system", ("qemu+tcp://%s/system", "fd00::3")),
        ("qemu:///system", (None, None)),
        ("qemu+unix:///system?socket=/run/x", (None, None)),
    ],
)
def test_a_host_reached_at_an_address_takes_migrations_there(
    uri: str, expected: tuple[str | None, str | None]
) -> None:
    assert migration_settings(uri) == expected
