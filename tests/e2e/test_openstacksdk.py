"""The same workflow through openstacksdk, as a Python user would write it."""

from __future__ import annotations

from pathlib import Path

import openstack
import pytest
import yaml
from openstack.connection import Connection

from .conftest import Cloud

pytestmark = pytest.mark.slow


def connect(cloud: Cloud, name: str) -> Connection:
    auth = yaml.safe_load(cloud.clouds_yaml.read_text())["clouds"][name]["auth"]
    return openstack.connect(
        auth_url=auth["auth_url"],
        username=auth["username"],
        password=auth["password"],
        project_name=auth["project_name"],
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="RegionOne",
    )


def test_sdk_boots_and_deletes_a_server_on_a_macvtap_port(cloud: Cloud, tmp_path: Path) -> None:
    conn = connect(cloud, "pcifleet")
    net = conn.network.create_network(
        name="sdk-net",
        provider_network_type="vlan",
        provider_physical_network="physnet2",
        provider_segmentation_id=200,
    )
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.20.0.0/24", name="sdk-sub")
    port = conn.network.create_port(network_id=net.id, name="sdk-port", binding_vnic_type="macvtap")
    flavor = conn.compute.create_flavor(name="sdk.flavor", ram=1024, vcpus=1, disk=1)
    image_file = tmp_path / "sdk.raw"
    image_file.write_bytes(b"\0" * 4096)
    image = conn.image.create_image(
        name="sdk-image", filename=str(image_file), disk_format="raw", container_format="bare"
    )
    server = conn.compute.create_server(
        name="sdk-vm", flavor_id=flavor.id, image_id=image.id, networks=[{"port": port.id}]
    )
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=120)
    assert server.compute_host.startswith("compute-")
    port = conn.network.get_port(port.id)
    assert port.binding_profile["physical_network"] == "physnet2"
    assert port.binding_profile["pci_slot"].startswith("0000:86:")
    assert port.binding_vif_type == "hw_veb"
    assert str(port.binding_vif_details["vlan"]) == "200"
    domain = cloud.domain_xml(server.compute_host, server.id)
    assert 'mode="passthrough"' in domain and '<tag id="200"/>' in domain

    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=120)
    port = conn.network.get_port(port.id)
    assert not port.binding_profile and not port.binding_host_id


def test_sdk_member_cannot_list_admin_servers(cloud: Cloud) -> None:
    admin, demo = connect(cloud, "pcifleet"), connect(cloud, "pcifleet-demo")
    mine = {s.id for s in admin.compute.servers()}
    theirs = {s.id for s in demo.compute.servers()}
    assert not mine & theirs
