"""Image v2: records with free-form properties, upload to the data directory
(queued -> active, size, checksums), visibility, JSON-patch updates, delete."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

from pcifleet.api.settings import ApiSettings
from tests.api.conftest import Tokens
from tests.api.helpers import Api

IMG = "/image/v2/images"


def create(api: Api, token: str, **fields: object) -> dict[str, object]:
    body = {"name": "cirros", "disk_format": "qcow2", "container_format": "bare", **fields}
    resp = api.post(IMG, token=token, json=body)
    assert resp.status_code == 201, resp.text
    image: dict[str, object] = resp.json()
    return image


def test_create_upload_download_delete(api: Api, tokens: Tokens, settings: ApiSettings) -> None:
    image = create(api, tokens.demo, hw_vif_model="virtio")
    assert image["status"] == "queued" and image["hw_vif_model"] == "virtio"
    data = b"\x00QFI" + bytes(range(256)) * 400
    up = api.put(f"{IMG}/{image['id']}/file", token=tokens.demo, content=data,
                 headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert up.status_code == 204
    shown = api.get(f"{IMG}/{image['id']}", token=tokens.demo).json()
    assert shown["status"] == "active" and shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    stored = Path(settings.data_dir) / "images" / str(image["id"])
    assert stored.read_bytes() == data
    assert api.get(f"{IMG}/{image['id']}/file", token=tokens.demo).content == data
    again = api.put(f"{IMG}/{image['id']}/file", token=tokens.demo, content=b"x")
    assert again.status_code == 409
    assert api.delete(f"{IMG}/{image['id']}", token=tokens.demo).status_code == 204
    assert not stored.exists()
    assert api.get(f"{IMG}/{image['id']}", token=tokens.demo).status_code == 404


def test_visibility_between_projects(api: Api, tokens: Tokens) -> None:
    private = create(api, tokens.demo, name="mine", visibility="private")
    public = create(api, tokens.admin, name="pub", visibility="public")
    assert (
        api.post(IMG, token=tokens.demo, json={"name": "x", "visibility": "public"}).status_code
        == 403
    )
    alice_sees = {i["name"] for i in api.get(IMG, token=tokens.alice).json()["images"]}
    assert alice_sees == {"pub"}
    assert api.get(f"{IMG}/{private['id']}", token=tokens.alice).status_code == 404
    assert api.delete(f"{IMG}/{public['id']}", token=tokens.demo).status_code == 403
    by_name = api.get(f"{IMG}?name=mine", token=tokens.demo).json()["images"]
    assert [i["id"] for i in by_name] == [private["id"]]
    by_ids = api.get(f"{IMG}?id=in:{private['id']},{public['id']}", token=tokens.demo).json()[
        "images"
    ]
    assert {i["id"] for i in by_ids} == {private["id"], public["id"]}


def test_community_images_are_listed_for_those_who_ask(api: Api, tokens: Tokens) -> None:
    community = create(api, tokens.demo, name="shared-widely", visibility="community")
    private = create(api, tokens.demo, name="mine", visibility="private")
    public = create(api, tokens.admin, name="pub", visibility="public")

    def names(token: str, query: str = "") -> set[str]:
        resp = api.get(f"{IMG}{query}", token=token)
        assert resp.status_code == 200, resp.text
        return {i["name"] for i in resp.json()["images"]}

    # Glance: a default list holds another project's community images only
    # when asked for; the owner sees its own
    assert names(tokens.alice) == {"pub"}
    assert names(tokens.alice, "?visibility=community") == {"shared-widely"}
    assert names(tokens.alice, "?visibility=all") == {"pub", "shared-widely"}
    assert names(tokens.demo) == {"pub", "mine", "shared-widely"}
    assert names(tokens.demo, "?visibility=private") == {"mine"}
    assert names(tokens.alice, "?visibility=public") == {"pub"}
    # anyone may show and boot it by id, listed or not
    assert api.get(f"{IMG}/{community['id']}", token=tokens.alice).status_code == 200
    for bad in ("everyone", "", "ALL", "x" * 300):
        resp = api.get(f"{IMG}?visibility={bad}", token=tokens.alice)
        assert resp.status_code == 400 and "visibility" in resp.text, (bad, resp.text)
    assert private["id"] and public["id"]


def test_patch_properties(api: Api, tokens: Tokens) -> None:
    image = create(api, tokens.demo)
    patch = [
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
    ]
    headers = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
    resp = api.patch(f"{IMG}/{image['id']}", token=tokens.demo, json=patch, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["name"] == "renamed" and resp.json()["hw_disk_bus"] == "scsi"
    removed = api.patch(f"{IMG}/{image['id']}", token=tokens.demo, headers=headers,
                        json=[{"op": "remove", "path": "/hw_disk_bus"}])  # fmt: skip
    assert "hw_disk_bus" not in removed.json()
    for bad, status in (
        ([{"op": "replace", "path": "/size", "value": 1}], 403),
        ([{"op": "move", "path": "/name"}], 400),
        ([{"op": "add", "path": "/a/b", "value": "x"}], 400),
        ([{"op": "add", "path": "/x", "value": 5}], 400),
        ({"op": "add"}, 400),
    ):
        resp = api.patch(f"{IMG}/{image['id']}", token=tokens.demo, json=bad, headers=headers)
        assert resp.status_code == status, (bad, resp.text)


def test_rejected_creates(api: Api, tokens: Tokens) -> None:
    for body, status, word in (
        ({"disk_format": "exe"}, 400, "disk_format"),
        ({"status": "active"}, 403, "status"),
        ({"min_ram": -1}, 400, "min_ram"),
        ({"prop": 5}, 400, "prop"),
        ({"prop": "v" * 300}, 400, "prop"),
        ({"name": "n" * 300}, 400, "name"),
        ({"id": "../../etc"}, 400, "id"),
        ([], 400, "object"),
    ):
        resp = api.post(IMG, token=tokens.demo, json=body)
        assert resp.status_code == status, (body, resp.text)
        assert word in resp.json()["message"], resp.text
    raw = api.post(
        IMG, token=tokens.demo, content=b"{x", headers={"Content-Type": "application/json"}
    )
    assert raw.status_code == 400
    assert api.get("/image/v2/schemas/image", token=tokens.demo).json()["name"] == "image"


def test_deleting_an_image_during_its_upload(
    api: Api, tokens: Tokens, settings: ApiSettings
) -> None:
    body = {"name": "i", "disk_format": "raw", "container_format": "bare"}
    image = api.post("/image/v2/images", token=tokens.demo, json=body).json()
    url = f"/image/v2/images/{image['id']}"
    headers = {"X-Auth-Token": tokens.demo}

    async def data() -> AsyncIterator[bytes]:
        yield b"first"
        deleted = await api.client.delete(url, headers=headers)
        assert deleted.status_code == 204, deleted.text
        yield b"second"

    resp = api.put(f"{url}/file", token=tokens.demo, content=data())
    assert resp.status_code == 409, resp.text
    assert "deleted during the upload" in resp.json()["message"]
    assert api.get(url, token=tokens.demo).status_code == 404
    assert not (settings.data_dir / "images" / image["id"]).exists()
