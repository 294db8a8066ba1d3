"""The disk a cold move hands through the controller
(``/pcifleet/v1/hosts/{host}/migrations/{uuid}/disk``): who may hand it over
and take it, what is refused (a damaged or oversized body, a bad digest, a
name that is no migration, a move in another state), what the destination's
build is told, and that no copy outlives its move."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet.api.app import create_app
from pcifleet.api.settings import ApiSettings
from pcifleet.compute.config import ComputeConfig
from pcifleet.compute.errors import BadRequest
from pcifleet.compute.moves import check_root_disk
from pcifleet.compute.reconciler import reconcile
from pcifleet.store.models import Migration
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens, in_process_client
from tests.api.helpers import COMPUTE, Api, compute_error
from tests.api.test_lifecycle import CLEAN, leftovers
from tests.api.test_moves import act, active_on_sriov, finish_one, host_of, migrations
from tests.api.test_servers import show

DATA = b"qcow2 overlay, or what stands in for one" * 100
# over several of the route's 1 MiB writes, and not a whole number of them
BIG = bytes(range(256)) * 12289


def migrating(api: Api, tokens: Tokens) -> tuple[str, dict[str, FakeAgent], str, str, str]:
    """A server whose source is stopping for a migration: (uuid, agents,
    source, destination, migration uuid). The source's ``move_source`` task
    is waiting in its feed."""
    uuid, _, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    assert act(api, tokens.admin, uuid, {"migrate": None}).status_code == 202
    (migration,) = migrations(api, tokens, uuid)
    return uuid, agents, source, dest, str(migration["uuid"])


def source_task(agent: FakeAgent) -> dict[str, Any]:
    (task,) = agent.tasks()
    assert task["kind"] == "move_source"
    return task


def stored(settings: ApiSettings) -> list[Path]:
    root = settings.data_dir / "move-disks"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def recorded(engine: Engine, migration: str) -> tuple[str | None, int | None]:
    with Session(engine) as session:
        row = session.scalar(select(Migration).where(Migration.uuid == migration))
        assert row is not None
        return row.disk_sha256, row.disk_size


def error_code(resp: Any, status: int) -> str:
    assert resp.status_code == status, resp.text
    return str(resp.json()["errors"][0]["code"])


def test_the_destination_takes_the_disk_the_source_handed_over(
    api: Api, tokens: Tokens, engine: Engine, settings: ApiSettings
) -> None:
    uuid, agents, source, dest, migration = migrating(api, tokens)
    assert agents[source].hand_over_disk(migration, BIG).status_code == 204
    digest = hashlib.sha256(BIG).hexdigest()
    assert recorded(engine, migration) == (digest, len(BIG))
    (copy,) = stored(settings)
    assert copy == settings.data_dir / "move-disks" / uuid / migration
    assert copy.read_bytes() == BIG and oct(copy.stat().st_mode & 0o777) == "0o600"
    assert oct(copy.parent.parent.stat().st_mode & 0o777) == "0o700"
    # the same disk again (a retry after a lost answer) is fine; another is not
    assert agents[source].hand_over_disk(migration, BIG).status_code == 204
    other = agents[source].hand_over_disk(migration, DATA)
    assert error_code(other, 409) == "pcifleet.migration_state"
    assert copy.read_bytes() == BIG and stored(settings) == [copy]

    task = source_task(agents[source])
    assert task["payload"]["migration"] == migration
    finish = api.post(f"/pcifleet/v1/tasks/{task['id']}/result", json={"state": "done"},
                      headers=agents[source].headers)  # fmt: skip
    assert finish.status_code == 200, finish.text
    (build,) = agents[dest].tasks()
    assert build["kind"] == "move_dest"
    assert build["payload"]["disk"] == {"migration": migration, "sha256": digest,
                                        "size": len(BIG)}  # fmt: skip
    taken = api.get(agents[dest].disk_url(migration), headers=agents[dest].headers)
    assert taken.status_code == 200 and taken.content == BIG
    assert taken.headers["X-Disk-Sha256"] == digest
    # too late to hand over another, and the source may not read it back
    late = agents[source].hand_over_disk(migration, BIG)
    assert error_code(late, 409) == "pcifleet.migration_state"
    peek = api.get(agents[source].disk_url(migration), headers=agents[source].headers)
    assert error_code(peek, 404) == "pcifleet.migration_not_found"

    agents[dest].finish(build)
    assert stored(settings) == [copy]  # kept while the move may still be reverted
    assert act(api, tokens.admin, uuid, {"confirmResize": None}).status_code == 204
    assert stored(settings) == []
    gone = api.get(agents[dest].disk_url(migration), headers=agents[dest].headers)
    assert error_code(gone, 404) == "pcifleet.migration_not_found"
    finish_one(agents[source], "confirm_source")


def test_only_the_moves_own_hosts_and_admins_reach_its_disk(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, agents, source, dest, migration = migrating(api, tokens)
    url = agents[source].disk_url(migration)
    digest = {"X-Disk-Sha256": hashlib.sha256(DATA).hexdigest()}
    assert api.put(url, content=DATA, headers=digest).status_code == 401
    # the destination's credential is not the source's
    as_dest = {**agents[dest].headers, **digest}
    assert api.put(url, content=DATA, headers=as_dest).status_code == 401
    # on its own path, for a move it is not the source of: as if unknown
    own = api.put(agents[dest].disk_url(migration), content=DATA, headers=as_dest)
    assert error_code(own, 404) == "pcifleet.migration_not_found"
    member = api.put(url, content=DATA, token=tokens.demo, headers=digest)
    assert member.status_code == 403
    assert recorded(engine, migration) == (None, None)
    # before the source handed anything over there is nothing to take
    early = api.get(agents[dest].disk_url(migration), headers=agents[dest].headers)
    assert error_code(early, 404) == "pcifleet.migration_not_found"
    assert api.put(url, content=DATA, token=tokens.admin, headers=digest).status_code == 204
    assert show(api, tokens.admin, uuid)["OS-EXT-STS:task_state"] == "resize_migrating"


def test_a_damaged_or_unnamed_disk_is_refused_and_nothing_kept(
    api: Api, tokens: Tokens, engine: Engine, settings: ApiSettings
) -> None:
    _, agents, source, _, migration = migrating(api, tokens)
    agent = agents[source]
    wrong = agent.hand_over_disk(migration, DATA, sha256=hashlib.sha256(b"other").hexdigest())
    assert error_code(wrong, 400) == "pcifleet.checksum_mismatch"
    assert "damaged" in wrong.json()["errors"][0]["detail"]
    for bad in (None, "", "abc", "g" * 64, "a" * 65, "a" * 63 + "!", "../" * 22):
        headers = dict(agent.headers)
        if bad is not None:
            headers["X-Disk-Sha256"] = bad
        resp = api.put(agent.disk_url(migration), content=DATA, headers=headers)
        assert error_code(resp, 400) == "pcifleet.bad_checksum", bad
        assert "X-Disk-Sha256" in resp.json()["errors"][0]["detail"]
    assert recorded(engine, migration) == (None, None)
    assert stored(settings) == []
    # and the move can still go on with the right disk
    assert agent.hand_over_disk(migration, DATA).status_code == 204


def test_names_that_are_no_migration_reach_no_file(
    api: Api, tokens: Tokens, settings: ApiSettings
) -> None:
    _, agents, source, _, migration = migrating(api, tokens)
    agent = agents[source]
    base = f"/pcifleet/v1/hosts/{source}/migrations"
    digest = {**agent.headers, "X-Disk-Sha256": hashlib.sha256(DATA).hexdigest()}
    for name in ("not-a-uuid", "..", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "x" * 300,
                 migration.upper() + "0", "00000000-0000-4000-8000-000000000000"):  # fmt: skip
        for method in ("PUT", "GET"):
            resp = api.request(method, f"{base}/{name}/disk", content=DATA, headers=digest)
            assert resp.status_code in (400, 404), (name, method, resp.text)
    # a control character in the path is refused before any route
    assert api.put(f"{base}/%00/disk", content=DATA, headers=digest).status_code == 400
    assert stored(settings) == []
    # the same migration in upper case is the same migration
    upper = api.put(f"{base}/{migration.upper()}/disk", content=DATA, headers=digest)
    assert upper.status_code == 204, upper.text
    assert [p.name for p in stored(settings)] == [migration]


@pytest.fixture
def small_api(settings: ApiSettings, engine: Engine) -> Iterator[tuple[Api, ApiSettings]]:
    small = dataclasses.replace(settings, move_disk_max_bytes=1000)
    with in_process_client(create_app(small, engine)) as api:
        yield api, small


def test_a_disk_over_the_limit_is_refused_as_it_streams(
    small_api: tuple[Api, ApiSettings], tokens: Tokens, engine: Engine
) -> None:
    api, settings = small_api
    _, agents, source, _, migration = migrating(api, tokens)
    agent = agents[source]
    big = b"x" * 1001
    told = agent.hand_over_disk(migration, big)
    assert error_code(told, 413) == "pcifleet.disk_too_large"
    assert "move_disk_max_bytes" in told.json()["errors"][0]["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: found while it streams
        for _ in range(11):
            yield b"x" * 100

    headers = {**agent.headers, "X-Disk-Sha256": hashlib.sha256(b"x" * 1100).hexdigest()}
    streamed = api.put(agent.disk_url(migration), content=chunks(), headers=headers)
    assert error_code(streamed, 413) == "pcifleet.disk_too_large"
    assert stored(settings) == [] and recorded(engine, migration) == (None, None)
    # the JSON body limit does not apply to disks: 1000 bytes is under this one only
    assert agent.hand_over_disk(migration, b"y" * 1000).status_code == 204


def test_a_source_that_hands_over_no_disk_fails_the_move(api: Api, tokens: Tokens) -> None:
    uuid, agents, source, dest, _ = migrating(api, tokens)
    task = source_task(agents[source])
    resp = api.post(f"/pcifleet/v1/tasks/{task['id']}/result", json={"state": "done"},
                    headers=agents[source].headers)  # fmt: skip
    assert resp.status_code == 200, resp.text
    server = show(api, tokens.admin, uuid)
    assert (server["status"], host_of(api, tokens, uuid)) == ("ACTIVE", source)
    assert agents[dest].tasks() == []
    assert migrations(api, tokens, uuid)[0]["status"] == "error"
    events = api.get(f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=tokens.admin,
                     headers={"OpenStack-API-Version": "compute 2.51"}).json()  # fmt: skip
    request_id = events["instanceActions"][0]["request_id"]
    detail = api.get(f"{COMPUTE}/servers/{uuid}/os-instance-actions/{request_id}",
                     token=tokens.admin,
                     headers={"OpenStack-API-Version": "compute 2.51"}).json()  # fmt: skip
    failed = [e for e in detail["instanceAction"]["events"] if e["result"] == "Error"]
    assert failed and "handed over no disk" in failed[0]["traceback"]


def test_a_failed_destination_leaves_no_copy(
    api: Api, tokens: Tokens, settings: ApiSettings
) -> None:
    uuid, agents, source, dest, _ = migrating(api, tokens)
    finish_one(agents[source], "move_source")
    assert len(stored(settings)) == 1
    finish_one(agents[dest], "move_dest", "failed", "disk of migration: damaged")
    server = show(api, tokens.admin, uuid)
    assert server["status"] == "ERROR" and "damaged" in server["fault"]["message"]
    assert stored(settings) == []
    assert host_of(api, tokens, uuid) == source


def test_the_reconciler_clears_copies_a_crash_or_a_delete_left(
    api: Api, tokens: Tokens, engine: Engine, settings: ApiSettings
) -> None:
    uuid, agents, source, _, migration = migrating(api, tokens)
    assert agents[source].hand_over_disk(migration, DATA).status_code == 204
    folder = settings.data_dir / "move-disks" / uuid
    fresh, stale = folder / f".{migration}.a.part", folder / f".{migration}.b.part"
    fresh.write_bytes(b"an upload under way")
    stale.write_bytes(b"an upload that died")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    config = ComputeConfig(reconcile_interval=0, data_dir=settings.data_dir)
    reconcile(engine, config)
    assert sorted(p.name for p in folder.iterdir()) == sorted([migration, fresh.name])

    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    for agent in agents.values():
        agent.run_all()
    os.utime(fresh, (old, old))
    assert reconcile(engine, config).counts.get("move disks removed") == 2
    assert not folder.exists()
    assert leftovers(engine) == CLEAN


def test_a_resize_never_shrinks_the_disk(api: Api, tokens: Tokens) -> None:
    uuid, _, _, _ = active_on_sriov(api, tokens)  # its flavor has a 1 GB root disk
    body = {"flavor": {"name": "zero", "ram": 512, "vcpus": 1, "disk": 0}}
    flavor = api.post(f"{COMPUTE}/flavors", token=tokens.admin, json=body).json()["flavor"]
    resp = act(api, tokens.demo, uuid, {"resize": {"flavorRef": flavor["id"]}})
    assert compute_error(resp, 400, "badRequest") == "Resize to zero disk flavor is not allowed."
    assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"
    assert migrations(api, tokens, uuid) == []


@pytest.mark.parametrize(
    ("old", "new", "refused"),
    [(2, 1, "Unable to resize disk down"), (2, 0, "zero disk"), (0, 0, None), (0, 5, None),
     (1, 1, None), (1, 3, None)],
)  # fmt: skip
def test_the_root_disk_rule(old: int, new: int, refused: str | None) -> None:
    if refused is None:
        check_root_disk({"disk": old}, {"disk": new})
        return
    with pytest.raises(BadRequest, match=refused):
        check_root_disk({"disk": old}, {"disk": new})
