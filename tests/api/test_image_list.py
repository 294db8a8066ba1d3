"""Image lists as glance answers them: size bounds, tags, both sort syntaxes, and
the empty id (``/v2/images/``) that is not the list."""

from __future__ import annotations

import pytest

from tests.api.conftest import Tokens
from tests.api.helpers import Api
from tests.api.test_images import IMG, create


def upload(api: Api, token: str, image_id: object, size: int) -> None:
    resp = api.put(f"{IMG}/{image_id}/file", token=token, content=b"x" * size)
    assert resp.status_code == 204, resp.text


def names(api: Api, token: str, query: str) -> list[str]:
    resp = api.get(f"{IMG}?{query}", token=token)
    assert resp.status_code == 200, resp.text
    return [i["name"] for i in resp.json()["images"]]


@pytest.fixture
def sized(api: Api, tokens: Tokens) -> None:
    for name, size, tags in (("small", 100, ["a"]), ("mid", 2000, ["a", "b"]), ("big", 5000, [])):
        image = create(api, tokens.demo, name=name, tags=tags)
        upload(api, tokens.demo, image["id"], size)
    create(api, tokens.demo, name="empty")  # no data, no size


@pytest.mark.usefixtures("sized")
def test_size_bounds_and_tags(api: Api, tokens: Tokens) -> None:
    assert sorted(names(api, tokens.demo, "size_min=100&size_max=2000")) == ["mid", "small"]
    assert names(api, tokens.demo, "size_min=2001") == ["big"]
    assert names(api, tokens.demo, "size_max=99") == []
    assert sorted(names(api, tokens.demo, "tag=a")) == ["mid", "small"]
    assert names(api, tokens.demo, "tag=a&tag=b") == ["mid"]
    assert names(api, tokens.demo, "tag=zzz") == []
    for bad in ("size_min=-1", "size_min=ten", "size_max=1.5", "size_min=" + "9" * 30):
        resp = api.get(f"{IMG}?{bad}", token=tokens.demo)
        assert resp.status_code == 400 and bad.split("=")[0] in resp.json()["message"]


@pytest.mark.usefixtures("sized")
def test_sort_and_sort_key_dir(api: Api, tokens: Tokens) -> None:
    assert names(api, tokens.demo, "sort=size:desc") == ["big", "mid", "small", "empty"]
    assert names(api, tokens.demo, "sort=size:asc") == ["empty", "small", "mid", "big"]
    assert names(api, tokens.demo, "sort_key=size&sort_dir=desc") == [
        "big",
        "mid",
        "small",
        "empty",
    ]
    assert names(api, tokens.demo, "sort=name:asc") == ["big", "empty", "mid", "small"]
    assert names(api, tokens.demo, "sort=name") == ["small", "mid", "empty", "big"]  # desc
    # newest first unless asked (ids break ties within a stored second)
    assert names(api, tokens.demo, "") == names(api, tokens.demo, "sort=created_at:desc,id:desc")
    for bad, word in (
        ("sort=size:sideways", "direction"),
        ("sort=password", "sort key"),
        ("sort_key=size&sort_dir=up", "direction"),
        ("sort=size&sort_key=name", "combined"),
        ("sort_key=size&sort_key=name&sort_dir=asc&sort_dir=desc&sort_dir=asc", "sort_dir"),
        ("sort=" + ",".join(["name"] * 50), "sort keys"),
    ):
        resp = api.get(f"{IMG}?{bad}", token=tokens.demo)
        assert resp.status_code == 400, (bad, resp.text)
        assert word in resp.json()["message"], (bad, resp.text)


def test_the_empty_image_id_is_not_the_list(api: Api, tokens: Tokens) -> None:
    create(api, tokens.demo)
    assert api.get(f"{IMG}/", token=tokens.demo).status_code == 404
    assert api.delete(f"{IMG}/", token=tokens.demo).status_code == 404
    assert api.delete(f"{IMG}/no-such-image", token=tokens.demo).status_code == 404
    assert api.get(IMG, token=tokens.demo).status_code == 200
    # other services still take a trailing slash
    assert api.get("/networking/v2.0/networks/", token=tokens.demo).status_code == 200
