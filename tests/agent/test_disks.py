"""Each server's overlay disk, made and read with the real qemu-img."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pcifleet.agent.disks import GIB, Disks, disks_for
from pcifleet.agent.errors import TaskFailed
from tests.system import need_command

UUID = "6f1c8d2e-4b7a-4c3e-9d5f-0a1b2c3d4e5f"
OTHER = "00000000-0000-4000-8000-0000000000aa"


@pytest.fixture
def qemu_img() -> str:
    return need_command("qemu-img", "qemu-utils")


@pytest.fixture
def disks(tmp_path: Path, qemu_img: str) -> Disks:
    return Disks(tmp_path / "disks", qemu_img)


def raw_image(tmp_path: Path, size: int = 1 << 20) -> Path:
    path = tmp_path / "images" / "img-1"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"\xeb" * size)
    return path


def qcow2_image(tmp_path: Path, qemu_img: str, size: str, backing: Path | None = None) -> Path:
    path = tmp_path / "images" / "img-q"
    path.parent.mkdir(exist_ok=True)
    extra = [] if backing is None else ["-F", "raw", "-b", str(backing)]
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", *extra, str(path), size], check=True)
    return path


def test_the_overlay_is_backed_by_the_image_and_sized_by_the_flavor(
    tmp_path: Path, disks: Disks
) -> None:
    image = raw_image(tmp_path)
    path = disks.create(UUID, image, "raw", 2)
    assert path == tmp_path / "disks" / f"{UUID}.qcow2"
    info = disks.info(path, "qcow2")
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == 2 * GIB
    assert info["full-backing-filename"] == str(image.resolve())
    assert info["backing-filename-format"] == "raw"
    assert image.read_bytes() == b"\xeb" * (1 << 20)  # the image is never written
    assert disks.servers() == {UUID}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_root_disk_0_takes_the_images_virtual_size(
    tmp_path: Path, disks: Disks, qemu_img: str
) -> None:
    image = qcow2_image(tmp_path, qemu_img, "3G")
    info = disks.info(disks.create(UUID, image, "qcow2", 0), "qcow2")
    assert (info["virtual-size"], info["backing-filename-format"]) == (3 * GIB, "qcow2")


def test_a_root_disk_smaller_than_the_image_is_refused(
    tmp_path: Path, disks: Disks, qemu_img: str
) -> None:
    image = qcow2_image(tmp_path, qemu_img, "5G")
    with pytest.raises(TaskFailed, match="root disk 1 GB is smaller than image img-q's virtual"):
        disks.create(UUID, image, "qcow2", 1)
    assert disks.servers() == set()


@pytest.mark.parametrize(
    ("root_gb", "message"),
    [
        (-1, "root disk of -1 GB is outside 0..65536 GB"),
        (10**9, "root disk of 1000000000 GB is outside 0..65536 GB"),
        (True, "must be a whole number of GB, got True"),
        ("20", "must be a whole number of GB, got '20'"),
    ],
)
def test_hostile_sizes_are_refused_before_qemu_img_runs(
    tmp_path: Path, disks: Disks, root_gb: object, message: str
) -> None:
    with pytest.raises(TaskFailed, match=message.replace("(", r"\(")):
        disks.create(UUID, raw_image(tmp_path), "raw", root_gb)  # type: ignore[arg-type]
    assert not (tmp_path / "disks").exists() or disks.servers() == set()


def test_an_image_with_a_backing_file_of_its_own_is_refused(
    tmp_path: Path, disks: Disks, qemu_img: str
) -> None:
    # An uploaded qcow2 chained to a host file would let the guest read that file.
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"s" * 4096)
    image = qcow2_image(tmp_path, qemu_img, "1M", backing=secret)
    with pytest.raises(TaskFailed, match="has a backing file"):
        disks.create(UUID, image, "qcow2", 0)


def test_an_image_that_is_not_its_format_fails_naming_qemu_img(
    tmp_path: Path, disks: Disks
) -> None:
    with pytest.raises(TaskFailed, match=r"qemu-img info failed: .*qcow2"):
        disks.create(UUID, raw_image(tmp_path), "qcow2", 1)
    assert disks.servers() == set()


def test_a_missing_image_fails_naming_it(tmp_path: Path, disks: Disks) -> None:
    with pytest.raises(TaskFailed, match="qemu-img info failed"):
        disks.create(UUID, tmp_path / "nope", "raw", 1)


def test_a_second_create_replaces_the_disk(tmp_path: Path, disks: Disks) -> None:
    image = raw_image(tmp_path)
    disks.create(UUID, image, "raw", 1)
    path = disks.create(UUID, image, "raw", 3)
    assert disks.info(path, "qcow2")["virtual-size"] == 3 * GIB


def test_remove_deletes_only_that_servers_disk(tmp_path: Path, disks: Disks) -> None:
    image = raw_image(tmp_path)
    disks.create(UUID, image, "raw", 1)
    disks.create(OTHER, image, "raw", 1)
    assert disks.remove(UUID) is True
    assert disks.remove(UUID) is False  # already gone is fine
    assert disks.servers() == {OTHER}
    assert image.exists()


def test_a_path_is_only_ever_made_from_a_uuid(disks: Disks) -> None:
    with pytest.raises(ValueError, match="UUID"):
        disks.path_of("../../etc/passwd")


def test_placeholders_where_qemu_img_is_missing(tmp_path: Path) -> None:
    disks = Disks(tmp_path / "disks", None)
    image = raw_image(tmp_path, 4096)
    path = disks.create(UUID, image, "raw", 0)
    data = json.loads(path.read_text())
    assert data["backing_file"] == str(image.resolve())
    assert (data["backing_format"], data["virtual_size"]) == ("raw", 4096)
    assert disks.create(UUID, image, "raw", 2) == path
    assert json.loads(path.read_text())["virtual_size"] == 2 * GIB
    assert disks.remove(UUID) and disks.servers() == set()


def test_which_disks_a_driver_gets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert not disks_for(tmp_path, "xml").real  # simulated: placeholders
    libvirt = disks_for(tmp_path, "libvirt")
    with pytest.raises(TaskFailed, match="qemu-img not found on this host: install qemu-utils"):
        libvirt.create(UUID, raw_image(tmp_path), "raw", 1)
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/qemu-img")
    assert disks_for(tmp_path, "xml").real and disks_for(tmp_path, "libvirt").real
