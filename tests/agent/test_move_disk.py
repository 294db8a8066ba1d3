"""A cold move's disk on each end: the source stops the guest and hands its
overlay over (starting the guest again if that fails), the client checks the
download against the build task's size and SHA-256, and ``Disks.adopt``
makes the overlay this host's: rebased onto its own image, grown, never
shrunk, and refused when it is not a plain qcow2 overlay."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pcifleet.agent import ControllerClient, ControllerError
from pcifleet.agent.client import DiskCorrupt
from pcifleet.agent.disks import GIB, Disks
from pcifleet.agent.errors import TaskFailed
from pcifleet.agent.moves import move_source
from pcifleet.agent.tasks import sweep_orphans
from pcifleet.virt import PowerState, XmlDriver, server_domain_spec
from pcifleet.virt.tasks import InstanceRef, MoveDisk, MoveSourceTask
from tests.system import need_command

UUID = "6f1c8d2e-4b7a-4c3e-9d5f-0a1b2c3d4e5f"
MIGRATION = "00000000-0000-4000-8000-0000000000bb"


@pytest.fixture
def qemu_img() -> str:
    return need_command("qemu-img", "qemu-utils")


def image(tmp_path: Path, name: str = "img") -> Path:
    path = tmp_path / "cache" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * (1 << 20))
    return path


def handed(disks: Disks, data: bytes) -> Path:
    path = disks.ready_dir() / ".move-x.part"
    path.write_bytes(data)
    return path


def source_overlay(tmp_path: Path, qemu_img: str, size: str = "1G") -> bytes:
    """An overlay as a source host made it: backed by an image path that does
    not exist here."""
    path = tmp_path / "elsewhere.qcow2"
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                    "/var/lib/other-host/images/img", "-u", str(path), size],
                   check=True)  # fmt: skip
    return path.read_bytes()


def test_adopt_rebases_onto_this_hosts_image_and_grows(tmp_path: Path, qemu_img: str) -> None:
    disks = Disks(tmp_path / "disks", qemu_img)
    cached = image(tmp_path)
    path = disks.adopt(UUID, handed(disks, source_overlay(tmp_path, qemu_img)), cached, "raw", 3)
    info = disks.info(path, "qcow2")
    assert info["full-backing-filename"] == str(cached.resolve())
    assert (info["backing-filename-format"], info["virtual-size"]) == ("raw", 3 * GIB)
    assert disks.servers() == {UUID}
    assert [p.name for p in disks.disks_dir.iterdir()] == [f"{UUID}.qcow2"]  # no temp left
    # root_gb 0 keeps the size the disk had
    again = disks.adopt(UUID, handed(disks, source_overlay(tmp_path, qemu_img, "2G")), cached,
                        "raw", 0)  # fmt: skip
    assert disks.info(again, "qcow2")["virtual-size"] == 2 * GIB


def test_adopt_never_shrinks_and_leaves_nothing(tmp_path: Path, qemu_img: str) -> None:
    disks = Disks(tmp_path / "disks", qemu_img)
    with pytest.raises(TaskFailed, match=r"smaller than the server's disk .* never shrunk"):
        disks.adopt(UUID, handed(disks, source_overlay(tmp_path, qemu_img, "2G")),
                    image(tmp_path), "raw", 1)  # fmt: skip
    assert list(disks.disks_dir.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"raw bytes, no qcow2 header" * 100, b"QFI\xfb"])
def test_adopt_refuses_what_is_not_a_qcow2(tmp_path: Path, qemu_img: str, content: bytes) -> None:
    disks = Disks(tmp_path / "disks", qemu_img)
    with pytest.raises(TaskFailed, match="qemu-img info failed"):
        disks.adopt(UUID, handed(disks, content), image(tmp_path), "raw", 1)
    assert list(disks.disks_dir.iterdir()) == []


def test_adopt_refuses_an_external_data_file(tmp_path: Path, qemu_img: str) -> None:
    # Its guest data would be another file of this host, named by the sender.
    secret = tmp_path / "host-file"
    crafted = tmp_path / "crafted.qcow2"
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", "-o",
                    f"data_file={secret},data_file_raw=on", str(crafted), "4096"],
                   check=True)  # fmt: skip
    disks = Disks(tmp_path / "disks", qemu_img)
    with pytest.raises(TaskFailed, match="external file"):
        disks.adopt(UUID, handed(disks, crafted.read_bytes()), image(tmp_path), "raw", 1)
    assert list(disks.disks_dir.iterdir()) == []


def test_placeholders_are_adopted_without_qemu_img(tmp_path: Path) -> None:
    disks = Disks(tmp_path / "disks", None)
    moved = {"placeholder": "x", "backing_file": "/other/img", "backing_format": "raw",
             "virtual_size": GIB}  # fmt: skip
    cached = image(tmp_path)
    path = disks.adopt(UUID, handed(disks, json.dumps(moved).encode()), cached, "raw", 2)
    assert json.loads(path.read_text()) == {**moved, "backing_file": str(cached.resolve()),
                                            "virtual_size": 2 * GIB}  # fmt: skip


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'{"virtual_size": 1}', b'{"placeholder": 1, "virtual_size": "1"}',
     b'{"placeholder": 1, "virtual_size": -5}', b'{"placeholder": 1}' + b" " * 70000],
)  # fmt: skip
def test_hostile_placeholders_are_refused(tmp_path: Path, content: bytes) -> None:
    disks = Disks(tmp_path / "disks", None)
    with pytest.raises(TaskFailed, match=r"placeholder|virtual size"):
        disks.adopt(UUID, handed(disks, content), image(tmp_path), "raw", 1)
    assert list(disks.disks_dir.iterdir()) == []


def test_part_files_a_crash_left_are_swept_once_idle(tmp_path: Path) -> None:
    disks = Disks(tmp_path / "disks", None)
    dead = handed(disks, b"half a download")
    alive = disks.ready_dir() / f".{UUID}.qcow2.abc.part"
    alive.write_bytes(b"being written")
    kept = disks.ready_dir() / ".not-a-part"
    kept.write_bytes(b"someone else's")
    old = time.time() - 7200
    os.utime(dead, (old, old))
    os.utime(kept, (old, old))
    assert sweep_orphans(XmlDriver(tmp_path / "state"), set(), disks) == []
    assert sorted(p.name for p in disks.disks_dir.iterdir()) == sorted([alive.name, kept.name])


# --- the source ---------------------------------------------------------------


def running_server(tmp_path: Path) -> tuple[XmlDriver, Disks]:
    driver = XmlDriver(tmp_path / "state")
    driver.define(server_domain_spec(UUID, "vm", 1, 512, "/images/x", managed=True))
    driver.start(UUID)
    disks = Disks(tmp_path / "disks", None)
    disks.ready_dir()
    disks.path_of(UUID).write_bytes(b"the guest's writes")
    return driver, disks


TASK = MoveSourceTask(InstanceRef(UUID, "vm"), MIGRATION).to_dict()


def test_the_source_stops_then_hands_its_disk_over(tmp_path: Path) -> None:
    driver, disks = running_server(tmp_path)
    seen: list[tuple[str, bytes, PowerState]] = []

    def hand_over(migration: str, path: Path) -> tuple[str, int]:
        seen.append((migration, path.read_bytes(), driver.power_state(UUID)))
        return "ab" * 32, 18

    done = move_source(driver, TASK, disks, hand_over)
    assert done["disk"] == {"sha256": "ab" * 32, "size": 18}
    assert seen == [(MIGRATION, b"the guest's writes", PowerState.SHUTDOWN)]
    assert disks.path_of(UUID).exists()  # kept for a revert


@pytest.mark.parametrize("failure", [ControllerError("PUT: 413 too large", 413), OSError(5, "EIO")])
def test_a_failed_hand_over_starts_the_guest_again(tmp_path: Path, failure: Exception) -> None:
    driver, disks = running_server(tmp_path)

    def hand_over(migration: str, path: Path) -> tuple[str, int]:
        raise failure

    with pytest.raises(TaskFailed, match=r"handing the disk of server .* to the controller"):
        move_source(driver, TASK, disks, hand_over)
    assert driver.power_state(UUID) is PowerState.RUNNING
    assert disks.path_of(UUID).exists()


class StubbornGuest(XmlDriver):
    """A guest that ignores the stop and keeps running."""

    def stop(self, uuid: str, timeout: float = 60.0) -> None:
        pass


def test_a_guest_that_did_not_stop_never_has_its_disk_copied(tmp_path: Path) -> None:
    _, disks = running_server(tmp_path)
    driver = StubbornGuest(tmp_path / "state")
    calls: list[str] = []
    with pytest.raises(TaskFailed, match=r"did not stop \(running\)"):
        move_source(driver, TASK, disks, lambda m, p: (calls.append(m), ("", 0))[1])
    assert calls == [] and driver.power_state(UUID) is PowerState.RUNNING


def test_a_source_without_the_disk_fails_and_a_stopped_guest_stays_stopped(
    tmp_path: Path,
) -> None:
    driver, disks = running_server(tmp_path)
    driver.stop(UUID, 1.0)
    disks.remove(UUID)
    with pytest.raises(TaskFailed, match="has no disk on this host"):
        move_source(driver, TASK, disks, lambda m, p: ("", 0))
    assert driver.power_state(UUID) is PowerState.SHUTDOWN


def test_a_task_without_its_migration_is_refused_before_the_guest_stops(tmp_path: Path) -> None:
    driver, disks = running_server(tmp_path)
    payload = {"instance": {"uuid": UUID}, "action": "stop"}  # an older controller's
    with pytest.raises(TaskFailed, match="move_source: migration: is required"):
        move_source(driver, payload, disks, lambda m, p: ("", 0))
    assert driver.power_state(UUID) is PowerState.RUNNING


# --- the client ---------------------------------------------------------------

DATA = b"overlay" * 5000


class Chunks(httpx.SyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), 4096):
            yield self.data[i : i + 4096]


def client_for(answer: httpx.MockTransport) -> ControllerClient:
    client = ControllerClient("http://controller", "h1", "secret")
    client.close()
    client._http = httpx.Client(base_url="http://controller", transport=answer)
    return client


def expected(data: bytes = DATA, **changes: object) -> MoveDisk:
    fields = {"migration": MIGRATION, "sha256": hashlib.sha256(data).hexdigest(),
              "size": len(data), **changes}  # fmt: skip
    return MoveDisk(**fields)  # type: ignore[arg-type]


def test_a_disk_is_downloaded_checked_into_a_hidden_temporary(tmp_path: Path) -> None:
    paths: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(200, stream=Chunks(DATA))

    got = client_for(httpx.MockTransport(answer)).download_move_disk(expected(), tmp_path)
    assert got.read_bytes() == DATA and got.name.startswith(".")
    assert paths == [f"/pcifleet/v1/hosts/h1/migrations/{MIGRATION}/disk"]


@pytest.mark.parametrize(
    ("served", "expect", "message"),
    [
        (DATA + b"x", expected(), "more than the 35000 bytes"),
        (DATA[:-1], expected(), "34999 bytes with SHA-256"),
        (DATA[:-1] + b"X", expected(), "expected 35000 bytes with"),
    ],
)
def test_a_disk_that_is_not_as_recorded_is_deleted(
    tmp_path: Path, served: bytes, expect: MoveDisk, message: str
) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, stream=Chunks(served)))
    with pytest.raises(DiskCorrupt, match=message):
        client_for(transport).download_move_disk(expect, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_upload_streams_the_file_named_by_its_digest(tmp_path: Path) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        request.read()
        sent.append(request)
        return httpx.Response(204)

    disk = tmp_path / "disk"
    disk.write_bytes(DATA * 40)  # over one chunk
    digest, size = client_for(httpx.MockTransport(answer)).upload_move_disk(MIGRATION, disk)
    (request,) = sent
    assert (digest, size) == (hashlib.sha256(DATA * 40).hexdigest(), len(DATA) * 40)
    assert request.method == "PUT" and request.content == DATA * 40
    assert request.headers["X-Disk-Sha256"] == digest
    assert request.headers["Content-Length"] == str(size)
    refused = httpx.MockTransport(lambda r: httpx.Response(413, json={"errors": [
        {"code": "pcifleet.disk_too_large", "detail": "too large"}]}))  # fmt: skip
    with pytest.raises(ControllerError, match="413 too large"):
        client_for(refused).upload_move_disk(MIGRATION, disk)
