"""Image PATCH in both of glance's media types, and what glance refuses: every
hostile body is a 4xx naming the operation or attribute, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.conftest import Tokens
from tests.api.helpers import Api
from tests.api.test_images import IMG, create

V21 = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
V20 = {"Content-Type": "application/openstack-images-v2.0-json-patch"}


def patch(api: Api, token: str, image: Any, body: Any, headers: dict[str, str] = V21) -> Any:
    return api.patch(f"{IMG}/{image['id']}", token=token, json=body, headers=headers)


def test_both_forms_replace_add_and_remove(api: Api, tokens: Tokens) -> None:
    image = create(api, tokens.demo, visibility="private")
    resp = patch(api, tokens.demo, image, [{"replace": "/name", "value": "v20"}], V20)
    assert resp.status_code == 200, resp.text
    assert resp.json()["name"] == "v20"
    resp = patch(
        api,
        tokens.demo,
        image,
        [
            {"op": "replace", "path": "/visibility", "value": "shared"},
            {"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
            {"op": "add", "path": "/hw_disk_bus", "value": "virtio"},  # 2.1: add replaces
            {"op": "add", "path": "/a~1b~0c", "value": "escaped"},
        ],
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["visibility"] == "shared" and body["hw_disk_bus"] == "virtio"
    assert body["a/b~c"] == "escaped"
    resp = patch(api, tokens.demo, image, [{"remove": "/hw_disk_bus"}], V20)
    assert resp.status_code == 200 and "hw_disk_bus" not in resp.json()
    shown = api.get(f"{IMG}/{image['id']}", token=tokens.demo).json()
    assert shown["name"] == "v20" and "hw_disk_bus" not in shown


def test_glances_answers_to_changes_an_image_refuses(api: Api, tokens: Tokens) -> None:
    image = create(api, tokens.demo, hw_cdrom_bus="ide")
    for body, headers, status, word in (
        ([{"op": "replace", "path": "/status", "value": "active"}], V21, 403, "read-only"),
        ([{"op": "replace", "path": "/id", "value": "x"}], V21, 403, "read-only"),
        ([{"op": "add", "path": "/os_glance_foo", "value": "bar"}], V21, 403, "reserved"),
        ([{"add": "/os_glance_foo", "value": "bar"}], V20, 403, "reserved"),
        ([{"op": "remove", "path": "/name"}], V21, 403, "may not be removed"),
        ([{"op": "remove", "path": "/nope"}], V21, 409, "does not exist"),
        ([{"op": "replace", "path": "/nope", "value": "x"}], V21, 409, "does not exist"),
        ([{"add": "/hw_cdrom_bus", "value": "sata"}], V20, 409, "already present"),
        ([{"add": "/name", "value": "x"}], V20, 409, "already present"),
    ):
        resp = patch(api, tokens.demo, image, body, headers)
        assert resp.status_code == status, (body, resp.text)
        assert word in resp.json()["message"], (body, resp.text)
    shown = api.get(f"{IMG}/{image['id']}", token=tokens.demo).json()
    assert shown["hw_cdrom_bus"] == "ide" and shown["status"] == "queued"


DEEP = {"v": None}
for _ in range(50):
    DEEP = {"v": DEEP}


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"op": "add"}, "array"),
        ("replace", "array"),
        (None, "array"),
        ([1], "patch[0]"),
        ([[]], "patch[0]"),
        ([{"op": "move", "path": "/name", "from": "/x"}], "move"),
        ([{"op": "test", "path": "/name", "value": "x"}], "test"),
        ([{"op": None, "path": "/name"}], "op"),
        ([{"op": ["add"], "path": "/name", "value": "x"}], "invalid operation"),
        ([{"path": "/name", "value": "x"}], "op"),
        ([{"op": "add", "value": "x"}], "path"),
        ([{"op": "add", "path": "/name"}], "value"),
        ([{"op": "add", "path": 5, "value": "x"}], "path"),
        ([{"op": "add", "path": "name", "value": "x"}], "start with '/'"),
        ([{"op": "add", "path": "/", "value": "x"}], "pointer"),
        ([{"op": "add", "path": "/a/b", "value": "x"}], "pointer"),
        ([{"op": "add", "path": "//", "value": "x"}], "pointer"),
        ([{"op": "add", "path": "/a~2", "value": "x"}], "~"),
        ([{"op": "add", "path": "/a~", "value": "x"}], "~"),
        ([{"op": "add", "path": "/" + "p" * 400, "value": "x"}], "path"),
        ([{"op": "add", "path": "/x", "value": 5}], "'x'"),
        ([{"op": "add", "path": "/x", "value": {"nested": [1, {"deeper": 2}]}}], "'x'"),
        ([{"op": "add", "path": "/x", "value": DEEP}], "'x'"),
        ([{"op": "add", "path": "/x", "value": "v" * 100_000}], "'x'"),
        ([{"op": "add", "path": "/" + "k" * 256, "value": "v"}], "property name"),
        ([{"op": "replace", "path": "/name", "value": "n" * 256}], "'name'"),
        ([{"op": "replace", "path": "/name", "value": ["list"]}], "'name'"),
        ([{"op": "replace", "path": "/min_ram", "value": -1}], "'min_ram'"),
        ([{"op": "replace", "path": "/min_ram", "value": 2**70}], "'min_ram'"),
        ([{"op": "replace", "path": "/visibility", "value": "everyone"}], "'visibility'"),
        ([{"op": "replace", "path": "/os_hidden", "value": {"a": 1}}], "'os_hidden'"),
        ([{"op": "replace", "path": "/tags", "value": "not-a-list"}], "'tags'"),
        ([{"op": "replace", "path": "/tags", "value": ["t" * 256]}], "'tags"),
        ([{"op": "add", "path": f"/p{i}", "value": "v"} for i in range(300)], "operations"),
    ],
)
def test_hostile_bodies_are_400_naming_what_is_wrong(
    api: Api, tokens: Tokens, body: Any, word: str
) -> None:
    image = create(api, tokens.demo)
    resp = patch(api, tokens.demo, image, body)
    assert resp.status_code == 400, resp.text
    assert word in resp.json()["message"], resp.text


def test_the_draft_form_names_one_operation(api: Api, tokens: Tokens) -> None:
    image = create(api, tokens.demo)
    for body in (
        [{"add": "/x", "replace": "/y", "value": "x"}],
        [{"value": "x"}],
        [{"op": "add", "path": "/x", "value": "x"}],  # the 2.1 form under the 2.0 type
    ):
        resp = patch(api, tokens.demo, image, body, V20)
        assert resp.status_code == 400, resp.text
        assert "exactly one" in resp.json()["message"]
    resp = patch(api, tokens.demo, image, [{"add": "/x", "value": {"deep": [1]}}], V20)
    assert resp.status_code == 400 and "'x'" in resp.json()["message"]


def test_media_type_and_malformed_json(api: Api, tokens: Tokens) -> None:
    image = create(api, tokens.demo)
    ops = [{"op": "replace", "path": "/name", "value": "x"}]
    for content_type in ("application/json", "text/plain", "", "application/json-patch+json"):
        resp = patch(api, tokens.demo, image, ops, {"Content-Type": content_type})
        assert resp.status_code == 415, (content_type, resp.text)
    for raw in (b"[{", b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe", b""):
        resp = api.patch(f"{IMG}/{image['id']}", token=tokens.demo, content=raw, headers=V21)
        assert resp.status_code == 400, (raw[:8], resp.text)
    resp = api.patch(
        f"{IMG}/{image['id']}",
        token=tokens.demo,
        content=json.dumps(ops).encode(),
        headers={"Content-Type": V21["Content-Type"] + "; charset=UTF-8"},
    )
    assert resp.status_code == 200, resp.text


def test_os_hidden_is_kept_and_hides_from_lists(api: Api, tokens: Tokens) -> None:
    hidden = create(api, tokens.demo, name="hidden", os_hidden=True)
    shown = create(api, tokens.demo, name="shown")
    assert hidden["os_hidden"] is True
    names = {i["name"] for i in api.get(IMG, token=tokens.demo).json()["images"]}
    assert "hidden" not in names and "shown" in names
    only_hidden = api.get(f"{IMG}?os_hidden=true", token=tokens.demo).json()["images"]
    assert [i["id"] for i in only_hidden] == [hidden["id"]]
    assert api.get(f"{IMG}/{hidden['id']}", token=tokens.demo).status_code == 200
    resp = patch(api, tokens.demo, shown, [{"replace": "/os_hidden", "value": True}], V20)
    assert resp.status_code == 200 and resp.json()["os_hidden"] is True
    assert api.get(IMG, token=tokens.demo).json()["images"] == []
    assert api.get(f"{IMG}?os_hidden=maybe", token=tokens.demo).status_code == 400
