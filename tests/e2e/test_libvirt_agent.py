"""The server action story against libvirt: ``pcifleet up --hosts 0`` plus one
``pcifleet agent`` process with ``--driver libvirt`` on ``test:///default``
(a fresh in-memory libvirt host per agent process), driven by openstacksdk.

The power state the API shows is the one the agent read back from libvirt after
each action, so it checks the domain itself.
"""

from __future__ import annotations

from pathlib import Path

import openstack
import pytest
import yaml
from openstack.connection import Connection

from tests.system import unavailable

from .helpers import (
    Api,
    admin_token,
    assert_nothing_leaked,
    host_credential,
    start_agent,
    start_up,
    stop,
)
from .helpers import wait_host_up as wait_up

pytestmark = pytest.mark.slow
RUNNING, PAUSED, SHUTDOWN, SUSPENDED = 1, 3, 4, 7


def sdk(data_dir: Path) -> Connection:
    auth = yaml.safe_load((data_dir / "clouds.yaml").read_text())["clouds"]["pcifleet"]["auth"]
    return openstack.connect(
        auth_url=auth["auth_url"],
        username=auth["username"],
        password=auth["password"],
        project_name=auth["project_name"],
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="RegionOne",
    )


def test_actions_on_the_libvirt_test_driver(tmp_path: Path) -> None:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        unavailable("libvirt-python: install it to run the agent on libvirt's test driver")
    data = tmp_path / "data"
    work = tmp_path / "lv-1"
    work.mkdir()
    up, url = start_up(data, hosts=0)
    agent = None
    api = None
    try:
        api = Api(url, admin_token(url, data))
        credential = host_credential(api, "lv-1")
        agent = start_agent(
            url, work, "lv-1", credential, "--driver", "libvirt", "--libvirt-uri", "test:///default"
        )
        wait_up(api, "lv-1")
        net = api.network("lv-net", "physnet2", 230)
        flavor = api.flavor("lv.small")
        image = api.image("lv-img")
        port = api.direct_port(net, "lv-port")

        conn = sdk(data)
        server = conn.compute.create_server(
            name="lv-vm", flavor_id=flavor, image_id=image, networks=[{"port": port}]
        )
        server = conn.compute.wait_for_server(server, status="ACTIVE", wait=60, interval=0.5)
        assert server.hypervisor_hostname == "lv-1" or server.compute_host == "lv-1"
        assert server.power_state == RUNNING
        bound = conn.network.get_port(port)
        assert bound.binding_host_id == "lv-1"
        assert bound.binding_profile["physical_network"] == "physnet2"

        def step(call: str, status: str, power: int) -> None:
            getattr(conn.compute, call)(server)
            api.wait_status(server.id, status, timeout=60)
            shown = conn.compute.get_server(server.id)
            assert (shown.status, shown.power_state) == (status, power), call

        step("stop_server", "SHUTOFF", SHUTDOWN)
        step("start_server", "ACTIVE", RUNNING)
        conn.compute.reboot_server(server, "SOFT")
        api.wait_status(server.id, "ACTIVE", timeout=60)
        conn.compute.reboot_server(server, "HARD")
        assert api.wait_status(server.id, "ACTIVE", timeout=60)["OS-EXT-STS:power_state"] == 1
        step("pause_server", "PAUSED", PAUSED)
        step("unpause_server", "ACTIVE", RUNNING)
        step("suspend_server", "SUSPENDED", SUSPENDED)
        step("resume_server", "ACTIVE", RUNNING)

        # The test driver runs no qemu, so nothing writes the console log yet:
        # the output is empty, as Nova answers for a guest that printed nothing.
        r = api.client.post(
            f"/compute/v2.1/servers/{server.id}/action", json={"os-getConsoleOutput": {}}
        )
        assert r.status_code == 200 and r.json() == {"output": ""}, r.text

        events = [a.action for a in conn.compute.server_actions(server.id)]
        for name in ("create", "stop", "start", "reboot", "pause", "unpause", "suspend"):
            assert name in events, (name, events)

        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, wait=60, interval=0.5)
        assert_nothing_leaked(api)
        conn.close()
    finally:
        if api is not None:
            api.close()
        stop(agent)
        stop(up)
