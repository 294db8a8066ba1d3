"""``pcifleet inventory`` as an operator runs it: tables, JSON, --explain, warnings, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pcifleet.cli.main import cli
from pcifleet.host.fakenodedev import write_libvirt_test_driver, write_nodedev_dir
from pcifleet.host.fakesys import FakeDevice, FakeNetdev, write_fake_sysfs
from pcifleet.host.snapshot import materialize_snapshot
from pcifleet.pci import PciDevice
from tests.system import unavailable

ROOT = Path(__file__).resolve().parent.parent.parent
SNAPSHOT = ROOT / "tests/fixtures/sysfs/debian12-k6.1-iommu-udev/sys"
CONFIG = """
[pci]
device_spec = [
  '{"devname": "enp1s0", "physical_network": "physnet1"}',
  { address = "0000:02:*.*", physical_network = "physnet2" },
  { vendor_id = "10de" },
]
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["inventory", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def k61(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The capture unpacked once for the module (the command can also unpack it itself)."""
    return str(materialize_snapshot(SNAPSHOT, tmp_path_factory.mktemp("k61") / "sys"))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "pcifleet.toml"
    path.write_text(CONFIG)
    return path


def test_table_of_the_real_kernel_capture(config: Path) -> None:
    # pointed at the stored capture itself: the command unpacks the NAME.link files
    code, out, err = run("--sysfs-root", str(SNAPSHOT), "--config", str(config))
    assert code == 0
    lines = out.splitlines()
    vf = next(line for line in lines if "0000:01:10.2" in line)
    for cell in (
        "8086:10ca",
        "type-VF",
        "0000:01:00.0",
        "enp1s0v1",
        "igbvf",
        "spec 1: physical_network=physnet1",
    ):
        assert cell in vf
    e1000e = next(line for line in lines if "0000:03:00.0" in line)
    assert "not matched" in e1000e and "e1000e" in e1000e
    assert "17 devices, 8 matched, 4 pools" in out
    pool = next(line for line in lines if "0000:01:00.0/vf/8086:10ca/" in line)
    assert "physical_network=physnet1" in pool and "│    4 │     4 │" in pool
    # the spec that matches nothing is named on stderr
    assert (
        err.strip()
        == 'pcifleet inventory: warning: device_spec 3 {"vendor_id": "10de"} matched no device'
    )


def test_json_for_scripts(k61: str, config: Path) -> None:
    code, out, _err = run("--sysfs-root", k61, "--config", str(config), "--json")
    assert code == 0
    body = json.loads(out)
    devices = {d["address"]: d for d in body["devices"]}
    vf = devices["0000:01:10.6"]
    assert vf["dev_type"] == "type-VF" and vf["parent_addr"] == "0000:01:00.0"
    assert vf["numa_node"] is None and vf["ifname"] is None and vf["driver"] == "vfio-pci"
    assert (vf["matched"], vf["spec_index"], vf["tags"]) == (
        True,
        1,
        {"physical_network": "physnet1"},
    )
    assert vf["pool_id"].startswith("0000:01:00.0/vf/8086:10ca/")
    # every device row reads back as a PciDevice
    fields = set(PciDevice.__dataclass_fields__)
    assert PciDevice.from_dict({k: v for k, v in vf.items() if k in fields}).ifname is None
    assert devices["0000:03:00.0"]["matched"] is False
    assert devices["0000:03:00.0"]["pool_id"] is None
    assert sorted((p["dev_type"], p["count"]) for p in body["pools"]) == [
        ("type-PF", 1),
        ("type-PF", 1),
        ("type-VF", 2),
        ("type-VF", 4),
    ]
    assert body["unmatched_specs"] == [{"spec_index": 3, "spec": '{"vendor_id": "10de"}'}]


def test_explain_by_netdev_and_by_address(k61: str, config: Path) -> None:
    code, out, _ = run("--sysfs-root", k61, "--config", str(config), "--explain", "enp1s0v1")
    assert code == 0
    assert out.splitlines()[0].startswith(
        "0000:01:10.2, 8086:10ca, type-VF, netdev enp1s0v1, PF 0000:01:00.0 (enp1s0)"
    )
    assert "spec 1 " in out and "matches (first match" in out
    assert "spec 2 {" in out and "no: address: bus 1 is not 2" in out
    assert "spec 3 {" in out and "no: vendor_id 8086 is not 10de" in out
    assert out.rstrip().endswith("result: matched by spec 1; tags: physical_network=physnet1")

    code, out, _ = run("--sysfs-root", k61, "--config", str(config), "--explain", "0000:03:00.0")
    assert code == 0
    assert "devname: device has enp3s0, spec wants enp1s0" in out
    assert "result: not matched" in out


def test_explain_json(k61: str, config: Path) -> None:
    code, out, _ = run(
        "--sysfs-root", k61, "--config", str(config), "--explain", "0000:02:10.0", "--json"
    )
    assert code == 0
    body = json.loads(out)
    # counted from 1, as the text ("spec 2") and config errors count
    assert (body["matched"], body["spec_index"]) == (True, 2)
    assert [s["spec_index"] for s in body["specs"]] == [1, 2, 3]
    assert [s["matches"] for s in body["specs"]] == [False, True, False]
    assert body["specs"][0]["reason"] == "devname: device has no netdev, spec wants enp1s0"


@pytest.mark.parametrize(
    "key", ["02:10.2", "2:10.2", "0:02:10.2", "0000:02:10.2", "02:10.2".upper()]
)
def test_explain_takes_every_address_form_a_spec_takes(k61: str, config: Path, key: str) -> None:
    code, out, err = run("--sysfs-root", k61, "--config", str(config), "--explain", key)
    assert code == 0, err
    assert out.startswith("0000:02:10.2, 8086:10ca, type-VF")


def test_explain_without_config_says_so(k61: str) -> None:
    code, out, _ = run("--sysfs-root", k61, "--explain", "enp1s0")
    assert code == 0
    assert "no device_spec is configured" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--explain", "eth9"], 2, "no device with address or netdev 'eth9' among the 17 devices"),
        (
            ["--explain", "../../etc"],
            2,
            "not a PCI address, and devname ('../../etc') must not contain",
        ),
        (["--explain", "x" * 16], 2, "longer than the kernel's limit"),
        (
            ["--libvirt-uri", "test:///default"],
            2,
            "--sysfs-root and --libvirt-uri cannot be used together",
        ),
        (
            ["--config", "/nonexistent/pcifleet.toml"],
            2,
            "/nonexistent/pcifleet.toml: cannot read config",
        ),
    ],
)
def test_errors_are_one_line(k61: str, args: list[str], code: int, message: str) -> None:
    got, out, err = run("--sysfs-root", k61, *args)
    assert got == code
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("pcifleet inventory: error: ")
    assert message in err


def test_unreadable_host_exits_1(tmp_path: Path) -> None:
    code, _out, err = run("--sysfs-root", str(tmp_path / "nowhere"))
    assert code == 1
    where = f"{tmp_path}/nowhere/bus/pci/devices"
    assert err == (
        f"pcifleet inventory: error: cannot list PCI devices in {where}: "
        "No such file or directory\n"
    )


def test_bad_config_exits_2_naming_file_and_field(k61: str, tmp_path: Path) -> None:
    bad = tmp_path / "pcifleet.toml"
    bad.write_text("[pci]\ndevice_spec = [{vendor_id = 'zz'}]\n")
    code, _out, err = run("--sysfs-root", k61, "--config", str(bad))
    assert code == 2
    assert err.startswith(
        f"pcifleet inventory: error: {bad}: [pci] device_spec 1: property vendor_id"
    )


def test_nova_conf_works_too(k61: str, tmp_path: Path) -> None:
    nova = tmp_path / "nova.conf"
    nova.write_text(
        '[pci]\npassthrough_whitelist = {"devname": "enp2s0", "physical_network": "p2"}\n'
    )
    code, out, err = run("--sysfs-root", k61, "--config", str(nova), "--json")
    assert code == 0 and err == ""
    matched = [d["address"] for d in json.loads(out)["devices"] if d["matched"]]
    assert matched == ["0000:02:00.0", "0000:02:10.0", "0000:02:10.2"]


def test_skipped_devices_are_warned_about(tmp_path: Path) -> None:
    devices = [
        FakeDevice("0000:05:00.0", "8086", "1572", totalvfs=4, netdevs=[FakeNetdev("ens5f0")]),
        FakeDevice("0000:05:02.0", "8086", "154c", physfn="0000:05:00.0"),
        FakeDevice("0000:06:02.0", "8086", "154c", physfn="0000:06:00.0"),
    ]
    root = write_fake_sysfs(devices, tmp_path / "sys")
    code, out, err = run("--sysfs-root", str(root))
    assert code == 0
    assert "2 devices, 0 matched, 0 pools" in out
    assert "pcifleet inventory: warning: 0000:06:02.0: skipped: physfn link dangles" in err


def test_nodedev_xml_source(tmp_path: Path) -> None:
    devices = [
        FakeDevice(
            "0000:5e:00.0", "10de", "1db4", class_code="0x030200", numa_node=1, driver="vfio-pci"
        )
    ]
    directory = write_nodedev_dir(devices, tmp_path / "xml")
    config = tmp_path / "pcifleet.toml"
    config.write_text("[pci]\ndevice_spec = [{vendor_id = '10de', product_id = '1db4'}]\n")
    code, out, err = run("--nodedev-xml", str(directory), "--config", str(config), "--json")
    assert code == 0 and err == ""
    body = json.loads(out)
    assert body["source"] == f"nodedev-xml:{directory}"
    assert body["devices"][0]["numa_node"] == 1
    assert body["pools"][0]["numa_node"] == 1 and body["pools"][0]["count"] == 1


def test_sample_layout_uses_its_own_specs() -> None:
    code, out, err = run("--layout", "sample", "--json")
    assert code == 0 and err == ""
    body = json.loads(out)
    assert len(body["devices"]) == 132
    counts = sorted(
        (p["dev_type"], p["numa_node"], p["tags"].get("physical_network"), p["count"])
        for p in body["pools"]
    )
    assert counts == [
        ("type-PCI", 0, None, 1),
        ("type-PCI", 1, None, 1),
        ("type-PF", 0, "physnet1", 1),
        ("type-PF", 1, "physnet2", 1),
        ("type-VF", 0, "physnet1", 64),
        ("type-VF", 1, "physnet2", 64),
    ]


def test_bad_layout_exits_2_naming_file(tmp_path: Path) -> None:
    bad = tmp_path / "host.toml"
    bad.write_text('[[nics]]\naddress = "0000:3b:00.0"\nnumvfs = -1\n')
    code, out, err = run("--layout", str(bad))
    assert (code, out) == (2, "")
    assert err.startswith(f"pcifleet inventory: error: {bad}: nics[0]: numvfs must be")
    assert err.count("\n") == 1


def test_live_libvirt_source(tmp_path: Path) -> None:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        unavailable("libvirt-python is not installed (extra 'libvirt')")
    devices = [
        FakeDevice(
            "0000:3b:00.0", "8086", "1572", numa_node=0, totalvfs=8, netdevs=[FakeNetdev("ens1f0")]
        ),
        FakeDevice("0000:3b:02.0", "8086", "154c", numa_node=0, physfn="0000:3b:00.0"),
    ]
    uri = write_libvirt_test_driver(devices, tmp_path / "host.xml")
    config = tmp_path / "pcifleet.toml"
    config.write_text(
        "[pci]\ndevice_spec = [{devname = 'ens1f0', physical_network = 'physnet1'}]\n"
    )
    code, out, err = run("--libvirt-uri", uri, "--config", str(config), "--explain", "0000:3b:02.0")
    assert (code, err) == (0, "")
    assert "PF 0000:3b:00.0 (ens1f0)" in out
    assert out.rstrip().endswith("result: matched by spec 1; tags: physical_network=physnet1")
