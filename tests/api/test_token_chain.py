"""Tokens issued from tokens, as Keystone issues them: the child keeps its
parent's expiry, names its parent in ``audit_ids`` and dies with the parent's
revocation; a user may validate and revoke any of its own tokens."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import DEMO_PASSWORD, Tokens
from tests.api.helpers import Api, password_auth

DOMAIN = {"name": "Default"}


def from_token(api: Api, token: str, project: str | None = "demo") -> tuple[str, dict[str, Any]]:
    auth: dict[str, Any] = {"identity": {"methods": ["token"], "token": {"id": token}}}
    if project is not None:
        auth["scope"] = {"project": {"name": project, "domain": DOMAIN}}
    resp = api.post("/v3/auth/tokens", json={"auth": auth})
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"], resp.json()["token"]


def password_token(api: Api) -> tuple[str, dict[str, Any]]:
    resp = api.post("/v3/auth/tokens", json=password_auth("demo", DEMO_PASSWORD, "demo"))
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"], resp.json()["token"]


def works(api: Api, token: str) -> bool:
    status = api.get("/compute/v2.1/flavors", token=token).status_code
    assert status in (200, 401)
    return status == 200


def test_a_child_token_keeps_its_parents_expiry_and_names_it(api: Api) -> None:
    parent, parent_body = password_token(api)
    child, child_body = from_token(api, parent)
    _grandchild, grandchild_body = from_token(api, child)
    assert child_body["expires_at"] == parent_body["expires_at"]
    assert grandchild_body["expires_at"] == parent_body["expires_at"]
    assert child_body["audit_ids"] == [child_body["audit_ids"][0], parent_body["audit_ids"][0]]
    assert set(child_body["methods"]) == {"password", "token"}


def test_revoking_a_token_revokes_every_token_issued_from_it(api: Api) -> None:
    parent, _ = password_token(api)
    child, _ = from_token(api, parent)
    grandchild, _ = from_token(api, child, project=None)
    sibling, _ = password_token(api)
    assert all(works(api, t) for t in (parent, child, grandchild, sibling))
    # revoked with the sibling: a user may revoke its own other tokens
    resp = api.delete("/v3/auth/tokens", token=sibling, headers={"X-Subject-Token": parent})
    assert resp.status_code == 204, resp.text
    assert not works(api, parent)
    assert not works(api, child)
    assert not works(api, grandchild)
    assert works(api, sibling)


def test_revoking_a_child_leaves_its_parent(api: Api) -> None:
    parent, _ = password_token(api)
    child, _ = from_token(api, parent)
    resp = api.delete("/v3/auth/tokens", token=parent, headers={"X-Subject-Token": child})
    assert resp.status_code == 204, resp.text
    assert works(api, parent) and not works(api, child)


def test_an_unscoped_token_validates_and_revokes_its_users_tokens(api: Api, tokens: Tokens) -> None:
    scoped, _ = password_token(api)
    unscoped, _ = from_token(api, scoped, project=None)
    other, _ = password_token(api)
    headers = {"X-Subject-Token": other}
    assert api.get("/v3/auth/tokens", token=unscoped, headers=headers).status_code == 200
    assert api.head("/v3/auth/tokens", token=unscoped, headers=headers).status_code == 200
    assert api.delete("/v3/auth/tokens", token=unscoped, headers=headers).status_code == 204
    assert not works(api, other)
    # another user's token stays out of reach
    headers = {"X-Subject-Token": tokens.alice}
    assert api.delete("/v3/auth/tokens", token=unscoped, headers=headers).status_code == 403
