"""The real `openstack` CLI (python-openstackclient) and openstacksdk against a
live server: what a tenant and an operator type, unchanged."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openstack
import pytest
from openstackclient.shell import OpenStackShell
from osc_lib import clientmanager as osc_clientmanager

from tests.api.live import ADMIN_PASSWORD, DEMO_PASSWORD, AgentThread, Live, live_server
from tests.conftest import ROOT

OPENSTACK = ROOT / ".venv" / "bin" / "openstack"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore"),  # the client libraries deprecation chatter
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(tmp_path_factory.mktemp("live")) as server:
        agent = AgentThread(server, "compute1")
        agent.start()
        yield server
        agent.stop.set()
        agent.join(timeout=5)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def osc_process(live: Live, cloud: str, command: str) -> Result:
    """The installed ``openstack`` executable as a user runs it (seconds of start-up)."""
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(live.clouds_yaml))
    env.pop("OS_CLOUD", None)
    argv = [str(OPENSTACK), "--os-cloud", cloud, *shlex.split(command)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def osc(live: Live, cloud: str, command: str, *, check: bool = True) -> Result:
    """The same CLI in this process (``openstackclient.shell``, which the executable
    runs): its slow imports are paid once instead of once per command."""
    out, err = io.StringIO(), io.StringIO()
    old = os.environ.get("OS_CLIENT_CONFIG_FILE")
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(live.clouds_yaml)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = OpenStackShell().run(["--os-cloud", cloud, *shlex.split(command)])
    finally:
        if old is None:
            del os.environ["OS_CLIENT_CONFIG_FILE"]
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = old
    forget_clients()
    result = Result(code, out.getvalue(), err.getvalue())
    if check:
        assert code == 0, (command, result.stdout, result.stderr)
    return result


def forget_clients() -> None:
    """Drop the API clients osc-lib caches on its ClientManager *class*: a process
    runs one command normally, so in-process the next command would reuse the
    previous cloud's credentials."""
    for value in vars(osc_clientmanager.ClientManager).values():
        if isinstance(value, osc_clientmanager.ClientCache):
            value._handle = None


def osc_json(live: Live, cloud: str, command: str) -> Any:
    return json.loads(osc(live, cloud, command + " -f json").stdout)


def test_openstack_executable_issues_a_token(live: Live) -> None:
    result = osc_process(live, "pcifleet-demo", "token issue -f json")
    assert result.returncode == 0, result.stderr
    token = json.loads(result.stdout)
    assert token["project_id"] and token["expires"] and token["id"]


def test_openstack_cli_workflow(live: Live, tmp_path: Path) -> None:
    admin, demo = "pcifleet", "pcifleet-demo"
    net = osc_json(
        live,
        admin,
        "network create --share --provider-network-type vlan "
        "--provider-physical-network physnet1 --provider-segment 100 sriov-net",
    )
    assert net["provider:segmentation_id"] == 100
    subnet = osc_json(
        live, admin, "subnet create --network sriov-net --subnet-range 10.0.0.0/24 s1"
    )
    assert subnet["gateway_ip"] == "10.0.0.1"
    port = osc_json(live, demo, "port create --network sriov-net --vnic-type direct sriov-port")
    assert port["binding_vnic_type"] == "direct"
    assert port["fixed_ips"][0]["ip_address"] == "10.0.0.2"

    flavor = osc_json(live, admin, "flavor create --vcpus 2 --ram 2048 --disk 1 m1.gpu")
    osc(live, admin, "flavor set --property pci_passthrough:alias=gpu:1 m1.gpu")
    shown = osc_json(live, admin, f"flavor show {flavor['id']}")
    assert shown["properties"] == {"pci_passthrough:alias": "gpu:1"}
    bad = osc(live, admin, "flavor set --property pci_passthrough:alias=tpu:1 m1.gpu", check=False)
    assert bad.returncode != 0 and "alias 'tpu' is not defined" in bad.stderr, bad.stdout

    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\x00" * 4096 + b"pcifleet")
    image = osc_json(
        live, demo, f"image create --file {disk} --disk-format raw --container-format bare tiny"
    )
    assert image["status"] == "active" and image["size"] == disk.stat().st_size

    server = osc_json(
        live, demo, "server create --flavor m1.gpu --image tiny --port sriov-port --wait vm1"
    )
    assert server["status"] == "ACTIVE"
    assert (
        osc_json(live, admin, f"server show {server['id']}")["OS-EXT-SRV-ATTR:host"] == "compute1"
    )
    bound = osc_json(live, admin, f"port show {port['id']}")
    assert bound["binding_vif_type"] == "hw_veb" and bound["binding_vif_details"]["vlan"] == "100"
    assert bound["binding_host_id"] == "compute1"
    assert bound["binding_profile"]["physical_network"] == "physnet1"
    assert bound["binding_profile"]["pci_vendor_info"] == "8086:154c"
    listed = osc_json(live, demo, "server list")
    assert [(s["Name"], s["Status"]) for s in listed] == [("vm1", "ACTIVE")]
    assert [h["Hypervisor Hostname"] for h in osc_json(live, admin, "hypervisor list")] == [
        "compute1"
    ]

    refused = osc(
        live, demo, "port create --network sriov-net --binding-profile pci_slot=0000:3b:02.0 p2",
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "binding:profile" in refused.stderr, refused.stdout

    osc(live, demo, "server delete --wait vm1")
    unbound = osc_json(live, admin, f"port show {port['id']}")
    assert unbound["binding_profile"] == {} and unbound["device_id"] == ""
    assert osc_json(live, demo, "server list") == []


def connect(live: Live, user: str, password: str, project: str) -> openstack.connection.Connection:
    return openstack.connect(
        auth_url=live.url,
        username=user,
        password=password,
        project_name=project,
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="RegionOne",
    )


def test_openstacksdk_workflow(live: Live) -> None:
    admin = connect(live, "admin", ADMIN_PASSWORD, "admin")
    demo = connect(live, "demo", DEMO_PASSWORD, "demo")
    net = admin.network.create_network(
        name="sdk-net",
        shared=True,
        provider_network_type="vlan",
        provider_physical_network="physnet1",
        provider_segmentation_id=200,
    )
    admin.network.create_subnet(network_id=net.id, cidr="10.2.0.0/24", ip_version=4)
    port = demo.network.create_port(network_id=net.id, binding_vnic_type="direct", name="sdk-port")
    flavor = admin.compute.create_flavor(name="sdk-flavor", ram=512, vcpus=1, disk=1)
    image = demo.image.create_image(
        "sdk-image", data=b"sdk", disk_format="raw", container_format="bare"
    )
    server = demo.compute.create_server(
        name="sdk-vm", flavor_id=flavor.id, image_id=image.id, networks=[{"port": port.id}]
    )
    server = demo.compute.wait_for_server(server, wait=60)
    assert server.status == "ACTIVE"
    bound = admin.network.get_port(port.id)
    assert bound.binding_host_id == "compute1" and bound.binding_vif_details["vlan"] == "200"
    assert [s.name for s in demo.compute.servers()] == ["sdk-vm"]
    demo.compute.delete_server(server)
    demo.compute.wait_for_delete(server, wait=60)
    assert demo.network.get_port(port.id).device_id == ""
