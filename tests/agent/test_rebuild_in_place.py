"""The agent's part of a rebuild (``rebuild_in_place``): the domain is made
again on a fresh overlay of the task's image, with the same devices; a bad
image or a missing device fails before the old domain is touched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from pcifleet.agent.disks import Disks
from pcifleet.agent.tasks import TaskFailed, build, rebuild_in_place
from pcifleet.virt import XmlDriver, get_driver
from pcifleet.virt.tasks import TaskImage
from tests.agent.test_tasks import GPU, LOCAL, UUID, VF, fake_image, host_disks, payload


def backing_of(disks: Disks, path: Path) -> str:
    """The file the server's overlay is backed by (a real overlay or a placeholder)."""
    if disks.real:
        return str(disks.info(path)["backing-filename"])
    return str(json.loads(path.read_text())["backing_file"])


def with_image(image_id: str, **changes: Any) -> dict[str, Any]:
    task = payload()
    task["instance"]["image_id"] = image_id
    task.update(changes)
    return task


def built(tmp_path: Path) -> tuple[XmlDriver, Disks]:
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    assert isinstance(driver, XmlDriver)
    disks = host_disks(tmp_path)
    build(driver, with_image("old"), LOCAL, fake_image(tmp_path), disks)
    return driver, disks


def test_a_rebuild_makes_a_fresh_disk_on_the_new_image_with_the_same_devices(
    tmp_path: Path,
) -> None:
    driver, disks = built(tmp_path)
    disk = disks.path_of(UUID)
    assert backing_of(disks, disk).endswith("old.img")
    details = rebuild_in_place(driver, with_image("new"), LOCAL, fake_image(tmp_path), disks)
    assert backing_of(disks, disk).endswith("new.img")
    assert details["disk"] == str(disk) and details["interfaces"] == [VF]
    assert details["hostdevs"] == [GPU]
    assert driver.info(UUID).running
    doc = etree.fromstring(driver.get_xml(UUID).encode())
    assert doc.find("devices/disk/source").get("file") == str(disk)
    assert doc.find("devices/interface[@type='hostdev']/vlan/tag").get("id") == "100"


def test_a_stopped_server_is_rebuilt_defined_and_not_started(tmp_path: Path) -> None:
    driver, disks = built(tmp_path)
    driver.stop(UUID, 1.0)
    rebuild_in_place(driver, with_image("new", start=False), LOCAL, fake_image(tmp_path), disks)
    assert not driver.info(UUID).running
    assert backing_of(disks, disks.path_of(UUID)).endswith("new.img")


def test_a_rebuild_handed_out_twice_rebuilds_twice(tmp_path: Path) -> None:
    driver, disks = built(tmp_path)
    for _ in range(2):
        rebuild_in_place(driver, with_image("new"), LOCAL, fake_image(tmp_path), disks)
        assert driver.info(UUID).running
    assert len(driver.list()) == 1


def test_an_image_that_cannot_be_had_fails_with_the_old_domain_untouched(tmp_path: Path) -> None:
    driver, disks = built(tmp_path)
    before = driver.get_xml(UUID)

    def broken(image_id: str, expect: TaskImage | None = None) -> tuple[Path, str]:
        raise TaskFailed(f"image {image_id}: checksum mismatch")

    with pytest.raises(TaskFailed, match="checksum mismatch"):
        rebuild_in_place(driver, with_image("new"), LOCAL, broken, disks)
    assert driver.info(UUID).running and driver.get_xml(UUID) == before
    assert backing_of(disks, disks.path_of(UUID)).endswith("old.img")


def test_a_device_gone_from_the_host_fails_before_anything_changes(tmp_path: Path) -> None:
    driver, disks = built(tmp_path)
    task = with_image("new")
    task["devices"][1]["address"] = "0000:99:00.0"
    with pytest.raises(TaskFailed, match="not on this host"):
        rebuild_in_place(driver, task, LOCAL, fake_image(tmp_path), disks)
    assert driver.info(UUID).running


def test_a_failure_after_the_old_domain_went_reports_no_power_state(tmp_path: Path) -> None:
    driver, disks = built(tmp_path)
    with pytest.raises(TaskFailed) as failed:
        # an unbootable image format is refused only once the build prepares the host
        rebuild_in_place(driver, with_image("new"), LOCAL, fake_image(tmp_path, "vmdk"), disks)
    assert failed.value.details == {"power_state": "nostate"}
    assert driver.list() == []
