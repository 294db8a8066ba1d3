"""Rebuild (Nova's rebuild action) with a stand-in agent: the server goes to
REBUILD on its own host with its ports and devices as they were, the host's
``rebuild_in_place`` task carries the new image, and the report ends it
ACTIVE (SHUTOFF for a stopped server) or in ERROR. Bad input is a 400 naming
the field and changes nothing; the reconciler fails a rebuild whose task is
gone and leaves a rebuild alone that an old evacuation preceded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from pcifleet.compute.config import ComputeConfig
from pcifleet.compute.reconciler import reconcile
from pcifleet.store.models import Instance, Migration, Task, utcnow
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, compute_error, create_port
from tests.api.test_lock import act, history, shown
from tests.api.test_server_actions import active_server
from tests.api.test_servers import boot, boot_env, port, vf_pool

ZERO_UUID = "00000000-0000-0000-0000-000000000000"


def image(api: Api, tokens: Tokens, name: str = "img2", **fields: Any) -> str:
    body = {
        "name": name,
        "visibility": "public",
        "disk_format": "raw",
        "container_format": "bare",
        **fields,
    }
    made: str = api.post("/image/v2/images", token=tokens.admin, json=body).json()["id"]
    resp = api.put(f"/image/v2/images/{made}/file", token=tokens.admin, content=b"disk2")
    assert resp.status_code == 204
    return made


def sriov_server(api: Api, tokens: Tokens) -> tuple[str, str, FakeAgent]:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    uuid = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    agent.run_all()
    assert shown(api, tokens.demo, uuid)["status"] == "ACTIVE"
    return uuid, p["id"], agent


def rebuild(api: Api, token: str, uuid: str, version: str = "2.88", **fields: Any) -> Any:
    return act(api, token, uuid, {"rebuild": fields}, version)


def one_task(agent: FakeAgent) -> dict[str, Any]:
    (task,) = agent.tasks()
    assert task["kind"] == "rebuild_in_place", task
    return task


def test_a_rebuild_keeps_host_ports_and_devices_and_takes_the_new_image(
    api: Api, tokens: Tokens
) -> None:
    uuid, port_id, agent = sriov_server(api, tokens)
    bound = port(api, tokens.admin, port_id)
    free = vf_pool(api, tokens, "physnet1")["count"]
    new = image(api, tokens)
    resp = rebuild(
        api,
        tokens.demo,
        uuid,
        imageRef=new,
        name="web-2",
        metadata={"role": "web"},
        description="rebuilt",
        adminPass="s3cret",
        preserve_ephemeral=True,
    )
    assert resp.status_code == 202, resp.text
    answer = resp.json()["server"]
    assert (answer["id"], answer["status"], answer["image"]["id"]) == (uuid, "REBUILD", new)
    assert (answer["name"], answer["metadata"], answer["description"]) == (
        "web-2",
        {"role": "web"},
        "rebuilt",
    )
    assert answer["adminPass"] == "s3cret"
    assert answer["OS-EXT-STS:task_state"] == "rebuilding"
    task = one_task(agent)
    payload = task["payload"]
    assert payload["instance"]["image_id"] == new and payload["image"]["id"] == new
    assert payload.get("start", True) is True  # a start is the default
    (device,) = payload["devices"]
    assert device["address"] == bound["binding:profile"]["pci_slot"]
    assert [p["id"] for p in payload["ports"]] == [port_id]
    agent.finish(task)
    server = shown(api, tokens.demo, uuid)
    assert (server["status"], server["OS-EXT-STS:power_state"]) == ("ACTIVE", 1)
    assert server["image"]["id"] == new and server["name"] == "web-2"
    assert shown(api, tokens.admin, uuid)["OS-EXT-SRV-ATTR:host"] == "compute1"
    assert port(api, tokens.admin, port_id)["binding:profile"] == bound["binding:profile"]
    assert vf_pool(api, tokens, "physnet1")["count"] == free  # nothing claimed or freed
    assert history(api, tokens.demo, uuid) == ["create", "rebuild"]
    actions = api.get(f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=tokens.admin).json()[
        "instanceActions"
    ]
    detail = api.get(
        f"{COMPUTE}/servers/{uuid}/os-instance-actions/{actions[0]['request_id']}",
        token=tokens.admin,
    ).json()["instanceAction"]
    assert [(e["event"], e["result"]) for e in detail["events"]] == [
        ("compute_rebuild_instance", "Success")
    ]


def test_a_stopped_server_is_rebuilt_and_stays_stopped(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    assert act(api, tokens.demo, uuid, {"os-stop": None}).status_code == 202
    agent.run_all()
    resp = rebuild(api, tokens.demo, uuid, imageRef=image(api, tokens))
    assert resp.json()["server"]["status"] == "REBUILD"
    task = one_task(agent)
    assert task["payload"]["start"] is False
    agent.finish(task)
    server = shown(api, tokens.demo, uuid)
    assert (server["status"], server["OS-EXT-STS:power_state"]) == ("SHUTOFF", 4)


def test_a_server_in_error_is_rebuilt_active(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    reset = act(api, tokens.admin, uuid, {"os-resetState": {"state": "error"}})
    assert reset.status_code == 202
    same = shown(api, tokens.demo, uuid)["image"]["id"]
    resp = rebuild(api, tokens.demo, uuid, imageRef=same)
    assert resp.json()["server"]["status"] == "REBUILD"
    agent.finish(one_task(agent))
    assert shown(api, tokens.demo, uuid)["status"] == "ACTIVE"


def test_a_failed_rebuild_leaves_the_server_in_error_with_the_reason(
    api: Api, tokens: Tokens
) -> None:
    uuid, agent = active_server(api, tokens)
    assert rebuild(api, tokens.demo, uuid, imageRef=image(api, tokens)).status_code == 202
    agent.finish(one_task(agent), "failed", "qemu-img create failed: no space", {
        "power_state": "nostate"
    })  # fmt: skip
    server = shown(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-STS:power_state"]) == ("ERROR", 0)
    assert "no space" in server["fault"]["message"]
    # and it may be rebuilt again
    assert rebuild(api, tokens.demo, uuid, imageRef=image(api, tokens, "img3")).status_code == 202


def test_rebuild_refuses_a_paused_server_or_one_already_busy(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    same = shown(api, tokens.demo, uuid)["image"]["id"]
    assert act(api, tokens.demo, uuid, {"pause": None}).status_code == 202
    busy = compute_error(rebuild(api, tokens.demo, uuid, imageRef=same), 409, "conflictingRequest")
    assert "task_state pausing" in busy
    agent.run_all()
    paused = compute_error(
        rebuild(api, tokens.demo, uuid, imageRef=same), 409, "conflictingRequest"
    )
    assert "vm_state paused" in paused
    assert shown(api, tokens.demo, uuid)["status"] == "PAUSED"


def test_rebuild_of_a_missing_or_deleted_server_is_404(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    same = shown(api, tokens.demo, uuid)["image"]["id"]
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agent.run_all()
    for target in (uuid, ZERO_UUID):
        compute_error(rebuild(api, tokens.demo, target, imageRef=same), 404, "itemNotFound")


def test_rebuild_with_an_image_that_is_not_there_is_400(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    missing = rebuild(api, tokens.demo, uuid, imageRef=ZERO_UUID)
    assert compute_error(missing, 400, "badRequest") == "Cannot find image for rebuild"
    private = image(api, tokens, "private", visibility="private")
    hidden = rebuild(api, tokens.demo, uuid, imageRef=private)
    assert compute_error(hidden, 400, "badRequest") == "Cannot find image for rebuild"
    queued = api.post(
        "/image/v2/images",
        token=tokens.admin,
        json={"name": "q", "visibility": "public", "disk_format": "raw",
              "container_format": "bare"},
    ).json()["id"]  # fmt: skip
    inactive = rebuild(api, tokens.demo, uuid, imageRef=queued)
    assert "is not active" in compute_error(inactive, 400, "badRequest")
    big = image(api, tokens, "big", min_ram=4096)
    assert "memory is too small" in compute_error(
        rebuild(api, tokens.demo, uuid, imageRef=big), 400, "badRequest"
    )
    assert agent.tasks() == []
    assert shown(api, tokens.demo, uuid)["status"] == "ACTIVE"


GOOD = "11111111-1111-1111-1111-111111111111"


@pytest.mark.parametrize(
    ("args", "version", "says"),
    [
        (None, "2.88", "field 'rebuild'"),
        ("img", "2.88", "field 'rebuild'"),
        ({}, "2.88", "rebuild.imageRef"),
        ({"imageRef": 5}, "2.88", "rebuild.imageRef"),
        ({"imageRef": "not-a-uuid"}, "2.88", "rebuild.imageRef"),
        ({"imageRef": "x" * 300}, "2.88", "rebuild.imageRef"),
        ({"imageRef": GOOD, "name": ""}, "2.88", "rebuild.name"),
        ({"imageRef": GOOD, "name": "n" * 256}, "2.88", "rebuild.name"),
        ({"imageRef": GOOD, "name": ["n"]}, "2.88", "rebuild.name"),
        ({"imageRef": GOOD, "metadata": "k=v"}, "2.88", "rebuild.metadata"),
        ({"imageRef": GOOD, "metadata": {"k/": "v"}}, "2.88", "rebuild.metadata"),
        ({"imageRef": GOOD, "metadata": {"k": "v" * 256}}, "2.88", "rebuild.metadata"),
        ({"imageRef": GOOD, "metadata": {"k": 1}}, "2.88", "rebuild.metadata"),
        ({"imageRef": GOOD, "preserve_ephemeral": "maybe"}, "2.88", "preserve_ephemeral"),
        ({"imageRef": GOOD, "adminPass": 12}, "2.88", "rebuild.adminPass"),
        ({"imageRef": GOOD, "accessIPv4": "300.1.1.1"}, "2.88", "rebuild.accessIPv4"),
        ({"imageRef": GOOD, "description": "d"}, "2.18", "'description' was unexpected"),
        ({"imageRef": GOOD, "description": "d" * 256}, "2.88", "rebuild.description"),
        ({"imageRef": GOOD, "key_name": "k"}, "2.53", "'key_name' was unexpected"),
        ({"imageRef": GOOD, "key_name": ""}, "2.88", "rebuild.key_name"),
        ({"imageRef": GOOD, "user_data": "aGk="}, "2.56", "'user_data' was unexpected"),
        ({"imageRef": GOOD, "user_data": "not base64!"}, "2.88", "rebuild.user_data"),
        ({"imageRef": GOOD, "personality": []}, "2.88", "'personality' was unexpected"),
        ({"imageRef": GOOD, "frobnicate": 1}, "2.88", "'frobnicate' was unexpected"),
        ({"imageRef": GOOD, "name": "a\x00b"}, "2.88", "NUL"),
    ],
)
def test_hostile_rebuild_bodies_are_400_naming_the_field_and_change_nothing(
    api: Api, tokens: Tokens, args: Any, version: str, says: str
) -> None:
    uuid, agent = active_server(api, tokens)
    before = shown(api, tokens.demo, uuid)
    resp = act(api, tokens.demo, uuid, {"rebuild": args}, version)
    assert says in compute_error(resp, 400, "badRequest")
    after = shown(api, tokens.demo, uuid)
    assert (after["status"], after["name"], after["image"]) == (
        before["status"],
        before["name"],
        before["image"],
    )
    assert agent.tasks() == [] and history(api, tokens.demo, uuid) == ["create"]


def test_a_rebuild_sets_or_clears_the_keypair_and_keeps_user_data(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    same = shown(api, tokens.demo, uuid)["image"]["id"]
    made = api.post(
        f"{COMPUTE}/os-keypairs",
        token=tokens.demo,
        json={"keypair": {"name": "k1"}},
        headers={"OpenStack-API-Version": "compute 2.2"},
    )
    assert made.status_code in (200, 201), made.text
    unknown = rebuild(api, tokens.demo, uuid, imageRef=same, key_name="nope")
    assert compute_error(unknown, 400, "badRequest") == "Invalid key_name provided."
    resp = rebuild(api, tokens.demo, uuid, imageRef=same, key_name="k1", user_data="aGk=")
    assert resp.json()["server"]["key_name"] == "k1"
    assert resp.json()["server"]["user_data"] == "aGk="
    agent.run_all()
    assert shown(api, tokens.demo, uuid)["key_name"] == "k1"
    resp = rebuild(api, tokens.demo, uuid, imageRef=same, key_name=None)
    assert resp.json()["server"]["key_name"] is None
    assert resp.json()["server"]["user_data"] == "aGk="  # not given: kept
    agent.run_all()
    # an admin's answer too says user_data, not the view's OS-EXT key for it
    answer = rebuild(api, tokens.admin, uuid, imageRef=same).json()["server"]
    assert answer["user_data"] == "aGk=" and "OS-EXT-SRV-ATTR:user_data" not in answer
    assert answer["OS-EXT-SRV-ATTR:host"] == "compute1"


def test_before_2_75_the_answer_is_an_updates_cut(api: Api, tokens: Tokens) -> None:
    uuid, _ = active_server(api, tokens)
    same = shown(api, tokens.demo, uuid)["image"]["id"]
    answer = rebuild(api, tokens.demo, uuid, "2.47", imageRef=same).json()["server"]
    assert "OS-EXT-STS:task_state" not in answer and "key_name" not in answer
    assert "original_name" in answer["flavor"] and "adminPass" in answer
    assert answer["status"] == "REBUILD"


def test_the_admin_password_can_be_left_out_of_the_answer(
    api: Api, tokens: Tokens, app: FastAPI
) -> None:
    uuid, _ = active_server(api, tokens)
    same = shown(api, tokens.demo, uuid)["image"]["id"]
    app.state.settings.enable_instance_password = False
    answer = rebuild(api, tokens.demo, uuid, imageRef=same).json()["server"]
    assert "adminPass" not in answer and answer["status"] == "REBUILD"


def test_a_locked_server_is_not_rebuilt_but_by_an_admin(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    same = shown(api, tokens.demo, uuid)["image"]["id"]
    assert act(api, tokens.demo, uuid, {"lock": None}).status_code == 202
    refused = rebuild(api, tokens.demo, uuid, imageRef=same)
    assert compute_error(refused, 409, "conflictingRequest") == f"Instance {uuid} is locked"
    assert rebuild(api, tokens.admin, uuid, imageRef=same).status_code == 202
    assert one_task(agent)


def stale(engine: Engine, uuid: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Instance)
            .where(Instance.uuid == uuid)
            .values(updated_at=utcnow() - timedelta(hours=1))
        )


def test_the_reconciler_fails_a_rebuild_whose_task_is_gone_and_not_before(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, agent = active_server(api, tokens)
    same = shown(api, tokens.demo, uuid)["image"]["id"]
    with Session(engine) as session, session.begin():
        # an evacuation long done: the rebuild below is not one
        session.add(
            Migration(
                uuid=str(uuid4()),
                instance_uuid=uuid,
                migration_type="evacuation",
                status="done",
                source_compute="compute0",
                dest_compute="compute1",
                old_flavor={},
                new_flavor={},
            )
        )
    assert rebuild(api, tokens.demo, uuid, imageRef=same).status_code == 202
    stale(engine, uuid)
    config = ComputeConfig(reconcile_interval=0)
    report = reconcile(engine, config)
    assert "lost rebuilds failed" not in report.counts  # its task is still there
    assert "lost moves ended" not in report.counts
    assert shown(api, tokens.demo, uuid)["status"] == "REBUILD"
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.instance_uuid == uuid).values(state="cancelled"))
    stale(engine, uuid)
    assert reconcile(engine, config).counts.get("lost rebuilds failed") == 1
    server = shown(api, tokens.admin, uuid)
    assert server["status"] == "ERROR" and "was lost" in server["fault"]["message"]
    assert agent.tasks() == []
