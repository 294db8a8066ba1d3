"""802.1qbh ports, direct-physical ports and guarded ports, driven by the real
``openstack`` CLI against a ``pcifleet up`` whose physnet2 sits behind an
802.1Qbh switch (``--qbh-physical-network physnet2``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.system import need_command

from .conftest import Cloud, running_up
from .helpers import OPENSTACK, OscRunner, osc_json, osc_ok, run_osc

pytestmark = pytest.mark.slow
# compute-1's physnet1 PF: the sample layout's MAC with the host's number in octet 4
PF_MAC = "3c:fd:fe:01:3b:00"


@pytest.fixture(scope="module")
def qbh_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cloud, OscRunner]]:
    """The cloud, and one long-lived ``openstack`` process to drive it (a fresh
    process per command costs seconds of imports on a busy machine)."""
    data_dir = tmp_path_factory.mktemp("pcifleet-qbh") / "data"
    with running_up(data_dir, "--qbh-physical-network", "physnet2") as url:
        clouds = data_dir / "clouds.yaml"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(clouds)
        cloud = Cloud(url, data_dir, clouds, env)
        runner = OscRunner(env)
        image = data_dir.parent / "tiny.raw"
        image.write_bytes(b"\0" * 65536)
        osc_ok(
            runner,
            "image",
            "create",
            "--file",
            str(image),
            "--disk-format",
            "raw",
            "--public",
            "tiny",
        )
        osc_ok(runner, "flavor", "create", "--vcpus", "1", "--ram", "256", "--disk", "1", "m1")
        for physnet, vlan in (("physnet1", "101"), ("physnet2", "202")):
            osc_ok(
                runner,
                "network",
                "create",
                "--share",
                "--provider-network-type",
                "vlan",
                "--provider-physical-network",
                physnet,
                "--provider-segment",
                vlan,
                f"{physnet}-net",
            )
            osc_ok(
                runner,
                "subnet",
                "create",
                "--network",
                f"{physnet}-net",
                "--subnet-range",
                f"10.{vlan}.0.0/24",
                f"{physnet}-sub",
            )
        try:
            yield cloud, runner
        finally:
            runner.close()


def osc_as(cli: OscRunner, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_osc(cli, *args, who=who)


def boot(cli: OscRunner, name: str, port: str, who: str = "pcifleet") -> dict[str, Any]:
    proc = osc_as(
        cli, who, "server", "create", "--flavor", "m1", "--image", "tiny", "--port", port,
        "--wait", name, "-f", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    shown = osc_as(cli, who, "server", "show", name, "-f", "json")
    assert shown.returncode == 0, shown.stderr
    server: dict[str, Any] = json.loads(shown.stdout)
    return server


def validate_domain(domain_xml: str, tmp_path: Path) -> None:
    """libvirt's own schema judges the domain the host's driver wrote."""
    tool = need_command("virt-xml-validate", "libvirt-clients libxml2-utils")
    path = tmp_path / "domain.xml"
    path.write_text(domain_xml)
    done = subprocess.run([tool, str(path), "domain"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_qbh_port_boots_with_its_port_profile(
    qbh_cloud: tuple[Cloud, OscRunner], tmp_path: Path
) -> None:
    cloud, cli = qbh_cloud
    osc_ok(cli, "port", "create", "--network", "physnet2-net", "--vnic-type", "direct", "qbh-bare")
    refused = osc_as(
        cli, "pcifleet", "server", "create", "--flavor", "m1", "--image", "tiny", "--port",
        "qbh-bare", "qbh-vm0",
    )  # fmt: skip
    assert refused.returncode != 0
    assert "binding:profile.profileid" in refused.stderr and "802.1qbh" in refused.stderr

    osc_ok(
        cli, "port", "create", "--network", "physnet2-net", "--vnic-type", "direct",
        "--binding-profile", "profileid=pp-gold.1", "qbh-port",
    )  # fmt: skip
    server = boot(cli, "qbh-vm", "qbh-port")
    assert server["status"] == "ACTIVE"
    port = osc_json(cli, "port", "show", "qbh-port")
    assert port["binding_vif_type"] == "802.1qbh"
    assert port["binding_vif_details"] == {"port_filter": False, "profileid": "pp-gold.1"}
    assert port["binding_profile"]["profileid"] == "pp-gold.1"
    assert port["binding_profile"]["physical_network"] == "physnet2"

    xml = cloud.domain_xml("compute-1", server["id"])
    validate_domain(xml, tmp_path)
    iface = etree.fromstring(xml.encode()).find("devices/interface[@type='hostdev']")
    assert iface.find("virtualport").get("type") == "802.1Qbh"
    assert iface.find("virtualport/parameters").get("profileid") == "pp-gold.1"
    assert iface.find("vlan") is None  # the switch's port profile sets the VLAN

    osc_ok(cli, "server", "delete", "--wait", "qbh-vm")
    assert osc_json(cli, "port", "show", "qbh-port")["binding_profile"] == {
        "profileid": "pp-gold.1"
    }


def test_direct_physical_port_takes_the_pfs_mac(
    qbh_cloud: tuple[Cloud, OscRunner], tmp_path: Path
) -> None:
    cloud, cli = qbh_cloud
    made = osc_json(
        cli, "port", "create", "--network", "physnet1-net", "--vnic-type", "direct-physical",
        "pf-port",
    )  # fmt: skip
    assert made["mac_address"].startswith("fa:16:3e:")
    server = boot(cli, "pf-vm", "pf-port")
    assert server["status"] == "ACTIVE"
    port = osc_json(cli, "port", "show", "pf-port")
    assert port["mac_address"] == PF_MAC
    assert port["binding_profile"]["device_mac_address"] == PF_MAC
    assert port["binding_profile"]["pci_slot"] == "0000:3b:00.0"
    assert port["binding_vif_type"] == "hostdev_physical"
    xml = cloud.domain_xml("compute-1", server["id"])
    validate_domain(xml, tmp_path)
    osc_ok(cli, "server", "delete", "--wait", "pf-vm")
    after = osc_json(cli, "port", "show", "pf-port")
    assert re.fullmatch(r"fa:16:3e(:[0-9a-f]{2}){3}", after["mac_address"])
    assert not after["binding_profile"]


def test_ports_are_guarded_as_neutron_and_nova_do(qbh_cloud: tuple[Cloud, OscRunner]) -> None:
    cloud, cli = qbh_cloud
    # its own process: a long-lived CLI process stays with the first cloud it used
    demo = OscRunner(cloud.env)
    try:
        guarded_story(cloud, cli, demo)
    finally:
        demo.close()


def guarded_story(cloud: Cloud, cli: OscRunner, demo: OscRunner) -> None:
    osc_as(demo, "pcifleet-demo", "port", "create", "--network", "physnet1-net", "demo-port")
    server = boot(demo, "demo-vm", "demo-port", who="pcifleet-demo")
    assert server["status"] == "ACTIVE"

    as_member = osc_as(demo, "pcifleet-demo", "port", "show", "demo-port", "-f", "json")
    assert as_member.returncode == 0, as_member.stderr
    shown = json.loads(as_member.stdout)
    for field in ("binding_host_id", "binding_profile", "binding_vif_type", "binding_vif_details"):
        assert not shown.get(field), (field, shown.get(field))
    assert osc_json(cli, "port", "show", "demo-port")["binding_host_id"] == "compute-1"

    deleted = osc_as(demo, "pcifleet-demo", "port", "delete", "demo-port")
    assert deleted.returncode != 0 and server["id"] in deleted.stderr
    repointed = osc_as(cli, "pcifleet", "port", "set", "--device", "elsewhere", "demo-port")
    assert repointed.returncode != 0 and server["id"] in repointed.stderr

    osc_ok(cli, "project", "create", "other")
    osc_ok(cli, "user", "create", "--project", "other", "--password", "other-pw", "mallory")
    osc_ok(cli, "role", "add", "--project", "other", "--user", "mallory", "member")
    mallory = {k: v for k, v in cloud.env.items() if k != "OS_CLIENT_CONFIG_FILE"} | dict(
        OS_AUTH_URL=f"{cloud.url}/v3",
        OS_USERNAME="mallory",
        OS_PASSWORD="other-pw",
        OS_PROJECT_NAME="other",
        OS_USER_DOMAIN_NAME="Default",
        OS_PROJECT_DOMAIN_NAME="Default",
        OS_IDENTITY_API_VERSION="3",
    )
    sneak = subprocess.run(
        [OPENSTACK, "port", "create", "--network", "physnet1-net", "--device", server["id"], "x"],
        env=mallory,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert sneak.returncode != 0 and "device_id" in sneak.stderr
    listed = osc_as(demo, "pcifleet-demo", "port", "list", "--server", "demo-vm", "-f", "json")
    assert [p["Name"] for p in json.loads(listed.stdout)] == ["demo-port"]

    # the server's own flows still move the port: detach, then delete freely
    removed = osc_as(demo, "pcifleet-demo", "server", "remove", "port", "demo-vm", "demo-port")
    assert removed.returncode == 0, removed.stderr
    osc_as(demo, "pcifleet-demo", "server", "delete", "--wait", "demo-vm")
    gone = osc_as(demo, "pcifleet-demo", "port", "delete", "demo-port")
    assert gone.returncode == 0, gone.stderr
