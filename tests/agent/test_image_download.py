"""The image cache: fetched once per host, checked against Glance's checksums,
and never left half-written under an image's name."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pcifleet.agent import Agent, AgentConfig
from pcifleet.agent.client import ControllerClient, ControllerError, ImageCorrupt
from pcifleet.agent.errors import TaskFailed
from pcifleet.virt import XmlDriver
from pcifleet.virt.tasks import TaskImage

IMAGE_ID = "0d1e2f3a-0000-4000-8000-000000000001"
DATA = b"cirros-ish " * 10_000


def expect(**changes: object) -> TaskImage:
    values: dict[str, object] = {
        "id": IMAGE_ID,
        "file": f"/pcifleet/v1/hosts/h1/images/{IMAGE_ID}/file",
        "disk_format": "raw",
        "size": len(DATA),
        "checksum": hashlib.md5(DATA, usedforsecurity=False).hexdigest(),
        "os_hash_algo": "sha512",
        "os_hash_value": hashlib.sha512(DATA).hexdigest(),
    }
    values.update(changes)
    return TaskImage(**values)  # type: ignore[arg-type]


class Chunks(httpx.SyncByteStream):
    """The image's bytes in pieces; ``fail_after`` pieces, then a dropped connection."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self.data, self.fail_after = data, fail_after

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), 4096):
            if self.fail_after is not None and i // 4096 >= self.fail_after:
                raise httpx.ReadError("connection reset by peer")
            yield self.data[i : i + 4096]


def serving(
    data: bytes = DATA, fail_after: int | None = None
) -> tuple[ControllerClient, list[str]]:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        headers = {"x-image-disk-format": "raw"}
        return httpx.Response(200, headers=headers, stream=Chunks(data, fail_after))

    client = ControllerClient("http://controller", "h1", "secret")
    client._http = httpx.Client(base_url="http://controller", transport=httpx.MockTransport(answer))
    return client, calls


def cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_a_good_image_is_fetched_once_and_kept(tmp_path: Path) -> None:
    client, calls = serving()
    dest = tmp_path / "images" / IMAGE_ID
    assert client.download_image(IMAGE_ID, dest, expect()) == (dest, "raw")
    assert dest.read_bytes() == DATA
    assert client.download_image(IMAGE_ID, dest, expect()) == (dest, "raw")
    assert len(calls) == 1
    assert cache_files(dest.parent) == [IMAGE_ID, f"{IMAGE_ID}.format"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"checksum": "0" * 32}, "md5 .* does not match the image's checksum 0000"),
        ({"os_hash_value": "ab" * 64}, "sha512 .* does not match the image's os_hash_value abab"),
        ({"size": len(DATA) + 1}, f"downloaded {len(DATA)} bytes, the image has {len(DATA) + 1}"),
    ],
)
def test_a_mismatch_deletes_the_download(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    client, _ = serving()
    dest = tmp_path / "images" / IMAGE_ID
    with pytest.raises(ImageCorrupt, match=message):
        client.download_image(IMAGE_ID, dest, expect(**changes))
    assert cache_files(dest.parent) == []  # nothing that could be taken for the image


def test_without_recorded_hashes_the_image_is_taken_as_it_comes(tmp_path: Path) -> None:
    client, _ = serving()
    dest = tmp_path / "images" / IMAGE_ID
    loose = expect(size=None, checksum=None, os_hash_algo=None, os_hash_value=None)
    assert client.download_image(IMAGE_ID, dest, loose)[0].read_bytes() == DATA


def test_an_interrupted_download_leaves_nothing_and_the_next_try_fetches_again(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "images" / IMAGE_ID
    broken, _ = serving(fail_after=3)
    with pytest.raises(ControllerError, match="connection reset"):
        broken.download_image(IMAGE_ID, dest, expect())
    assert cache_files(dest.parent) == []
    good, calls = serving()
    assert good.download_image(IMAGE_ID, dest, expect())[0].read_bytes() == DATA
    assert len(calls) == 1


def test_a_half_file_from_a_crash_is_not_an_image(tmp_path: Path) -> None:
    # A crash mid-download leaves only a .part- file: the image is fetched again.
    dest = tmp_path / "images" / IMAGE_ID
    dest.parent.mkdir()
    (dest.parent / ".part-abc").write_bytes(DATA[:100])
    dest.write_bytes(DATA[:100])  # even under the name, without its .format it is not taken
    client, calls = serving()
    assert client.download_image(IMAGE_ID, dest, expect())[0].read_bytes() == DATA
    assert len(calls) == 1


def test_the_agent_fails_the_task_on_a_corrupt_image(tmp_path: Path) -> None:
    client, _ = serving(DATA[:-1] + b"X")
    config = AgentConfig(
        controller="http://controller", host="h1", credential="x", driver="xml",
        state_dir=tmp_path / "state",
    )  # fmt: skip
    agent = Agent(config, [], client=client, driver=XmlDriver(config.state_dir))
    with pytest.raises(TaskFailed, match=r"image 0d1e2f3a.*md5 .*; the download was deleted"):
        agent.fetch_image(IMAGE_ID, expect())
    assert cache_files(config.image_cache) == []
