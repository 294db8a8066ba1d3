"""How SR-IOV ports bind beyond hw_veb: 802.1qbh on the physical networks the
controller names, and direct-physical ports wearing their PF's MAC."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from pcifleet.api.app import create_app
from pcifleet.api.settings import ApiSettings
from pcifleet.compute.binding import bind_sriov_port
from pcifleet.store.claims import ClaimedDevice
from pcifleet.store.cloud import Port
from pcifleet.virt.tasks import TaskPort
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens, in_process_client
from tests.api.helpers import COMPUTE, NET, Api, compute_error, create_port, neutron_error
from tests.api.test_servers import boot, boot_env, show

PF_MAC = "3c:fd:fe:00:3b:00"  # the sample host's physnet1 PF (tests/api/inventory.py)
RANDOM_MAC = re.compile(r"fa:16:3e(:[0-9a-f]{2}){3}")


@pytest.fixture
def qbh_api(settings: ApiSettings, engine: Any) -> Iterator[Api]:
    """The API of a controller whose physnet1 sits behind an 802.1Qbh switch."""
    app: FastAPI = create_app(
        dataclasses.replace(settings, qbh_physical_networks=frozenset({"physnet1"})), engine
    )
    with in_process_client(app) as api:
        yield api


def admin_port(api: Api, tokens: Tokens, port_id: str) -> dict[str, Any]:
    got: dict[str, Any] = api.get(f"{NET}/ports/{port_id}", token=tokens.admin).json()["port"]
    return got


def set_profile(api: Api, tokens: Tokens, port_id: str, profile: dict[str, Any]) -> Any:
    return api.put(
        f"{NET}/ports/{port_id}", token=tokens.admin, json={"port": {"binding:profile": profile}}
    )


def test_qbh_port_binds_with_its_profile_and_no_vlan(qbh_api: Api, tokens: Tokens) -> None:
    api = qbh_api
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    assert set_profile(api, tokens, p["id"], {"profileid": "pp-gold.1"}).status_code == 200

    server_id = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    bound = admin_port(api, tokens, p["id"])
    assert bound["binding:vif_type"] == "802.1qbh"
    assert bound["binding:vif_details"] == {"port_filter": False, "profileid": "pp-gold.1"}
    profile = bound["binding:profile"]
    assert profile["profileid"] == "pp-gold.1" and profile["physical_network"] == "physnet1"
    assert profile["pci_slot"].startswith("0000:3b:")
    (task,) = agent.tasks()
    (wire,) = task["payload"]["ports"]
    spec = TaskPort.from_dict(wire).interface()
    assert (spec.vif_type, spec.profileid, spec.vlan) == ("802.1qbh", "pp-gold.1", None)
    agent.finish(task)
    assert show(api, tokens.demo, server_id)["status"] == "ACTIVE"

    assert api.delete(f"{COMPUTE}/servers/{server_id}", token=tokens.demo).status_code == 204
    agent.run_all()
    # the admin's key outlives the binding, so the port boots again as it is
    assert admin_port(api, tokens, p["id"])["binding:profile"] == {"profileid": "pp-gold.1"}


def test_qbh_port_without_profileid_is_refused_at_boot(qbh_api: Api, tokens: Tokens) -> None:
    api = qbh_api
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "macvtap"})
    message = compute_error(boot(api, tokens.demo, env, [{"port": p["id"]}]), 400, "badRequest")
    assert "binding:profile.profileid" in message and "802.1qbh" in message
    assert admin_port(api, tokens, p["id"])["device_id"] == ""  # nothing taken
    servers = api.get(f"{COMPUTE}/servers", token=tokens.demo).json()["servers"]
    assert servers == []
    # a normal port on the same network needs no profile
    plain = boot(api, tokens.demo, env, [{"uuid": env["net"]["id"]}])
    assert plain.status_code == 202, plain.text


def test_attaching_a_qbh_port_without_profileid_is_refused(qbh_api: Api, tokens: Tokens) -> None:
    api = qbh_api
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    server_id = boot(api, tokens.demo, env, [{"uuid": env["net"]["id"]}]).json()["server"]["id"]
    agent.run_all()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "macvtap"})
    resp = api.post(
        f"{COMPUTE}/servers/{server_id}/os-interface",
        token=tokens.demo,
        json={"interfaceAttachment": {"port_id": p["id"]}},
    )
    assert "binding:profile.profileid" in compute_error(resp, 400, "badRequest")
    assert admin_port(api, tokens, p["id"])["device_id"] == ""
    assert show(api, tokens.demo, server_id)["OS-EXT-STS:task_state"] is None


@pytest.mark.parametrize("profileid", ["a b", "<x>", "'", "", "p" * 40, 7, None])
def test_bad_profileid_is_400_naming_it(api: Api, tokens: Tokens, profileid: Any) -> None:
    env = boot_env(api, tokens)
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    resp = set_profile(api, tokens, p["id"], {"profileid": profileid})
    assert "profileid" in neutron_error(resp, 400)
    assert admin_port(api, tokens, p["id"])["binding:profile"] == {}


def test_without_the_setting_a_profileid_changes_nothing(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    set_profile(api, tokens, p["id"], {"profileid": "pp-1"})
    boot(api, tokens.demo, env, [{"port": p["id"]}])
    bound = admin_port(api, tokens, p["id"])
    assert bound["binding:vif_type"] == "hw_veb"
    assert bound["binding:vif_details"] == {"port_filter": False, "vlan": "100"}


def test_direct_physical_port_wears_its_pfs_mac_while_bound(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct-physical"})
    own_mac = p["mac_address"]
    assert RANDOM_MAC.fullmatch(own_mac)
    server_id = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    bound = admin_port(api, tokens, p["id"])
    assert bound["mac_address"] == PF_MAC
    assert bound["binding:profile"]["device_mac_address"] == PF_MAC
    assert bound["binding:profile"]["pci_slot"] == "0000:3b:00.0"
    member_view = api.get(f"{NET}/ports/{p['id']}", token=tokens.demo).json()["port"]
    assert member_view["mac_address"] == PF_MAC  # what the guest's NIC really says
    (task,) = agent.tasks()
    assert task["payload"]["ports"][0]["mac_address"] == PF_MAC
    agent.finish(task)

    assert api.delete(f"{COMPUTE}/servers/{server_id}", token=tokens.demo).status_code == 204
    agent.run_all()
    unbound = admin_port(api, tokens, p["id"])
    assert unbound["binding:profile"] == {}
    assert RANDOM_MAC.fullmatch(unbound["mac_address"])  # the PF's MAC stays with the PF

    # the PF (and its MAC) is free for the next port
    again = create_port(
        api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct-physical"}
    )
    boot(api, tokens.demo, env, [{"port": again["id"]}])
    assert admin_port(api, tokens, again["id"])["mac_address"] == PF_MAC


def test_a_pf_mac_held_by_another_port_is_left_to_it(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    squatter = create_port(api, tokens.admin, env["net"]["id"], mac_address=PF_MAC)
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct-physical"})
    server_id = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    bound = admin_port(api, tokens, p["id"])
    assert bound["mac_address"] == p["mac_address"]  # unique MACs win over mirroring the PF
    assert bound["binding:profile"]["device_mac_address"] == PF_MAC
    assert admin_port(api, tokens, squatter["id"])["mac_address"] == PF_MAC
    assert show(api, tokens.demo, server_id)["status"] == "BUILD"


def test_moving_to_a_pf_without_a_netdev_gives_up_the_old_pfs_mac(
    api: Api, tokens: Tokens, engine: Any
) -> None:
    env = boot_env(api, tokens)
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct-physical"})

    def pf(mac: str | None) -> ClaimedDevice:
        return ClaimedDevice(
            address="0000:3b:00.0", request_id="r1", vendor_id="8086", product_id="1572",
            dev_type="type-PF", parent_addr=None, numa_node=0, ifname=None,
            tags={"physical_network": "physnet1"}, extra={"mac": mac} if mac else {},
        )  # fmt: skip

    with Session(engine) as session, session.begin():
        port = session.get(Port, p["id"])
        assert port is not None
        bind_sriov_port(session, port, host="compute1", device=pf(PF_MAC))
        assert port.mac_address == PF_MAC
        bind_sriov_port(session, port, host="compute2", device=pf(None))
        assert RANDOM_MAC.fullmatch(port.mac_address)
        assert "device_mac_address" not in port.binding_profile
