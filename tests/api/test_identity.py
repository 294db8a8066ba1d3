"""Identity v3 stories: discovery, password tokens with a catalog, validation,
revocation, expiry and the errors of each."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from pcifleet.api.bootstrap import bootstrap
from pcifleet.api.security import hash_token
from pcifleet.store.cloud import Token, User
from tests.api.conftest import ADMIN_PASSWORD, DEMO_PASSWORD, Tokens
from tests.api.helpers import Api, password_auth


def test_version_discovery(api: Api) -> None:
    resp = api.get("/")
    assert resp.status_code == 300
    (version,) = resp.json()["versions"]["values"]
    assert version["id"].startswith("v3") and version["status"] == "stable"
    assert version["links"][0]["href"] == "http://pcifleet.test/v3/"
    assert api.get("/v3").json()["version"]["id"] == version["id"]
    assert api.get("/v3/").status_code == 200


def test_password_token_with_catalog_then_validate_and_revoke(api: Api) -> None:
    resp = api.post("/v3/auth/tokens", json=password_auth("demo", DEMO_PASSWORD, "demo"))
    assert resp.status_code == 201
    token = resp.headers["X-Subject-Token"]
    body = resp.json()["token"]
    assert body["user"]["name"] == "demo"
    assert body["project"]["name"] == "demo"
    assert {r["name"] for r in body["roles"]} == {"member", "reader"}
    assert body["expires_at"].endswith("Z")
    types = {entry["type"]: entry for entry in body["catalog"]}
    assert set(types) == {"identity", "compute", "network", "image"}
    urls = {t: e["endpoints"][0]["url"] for t, e in types.items()}
    assert urls["compute"] == "http://pcifleet.test/compute/v2.1"
    assert urls["network"] == "http://pcifleet.test/networking"
    # the token is stored only as its hash
    validated = api.get("/v3/auth/tokens", token=token, headers={"X-Subject-Token": token})
    assert validated.status_code == 200
    assert validated.json()["token"]["user"]["id"] == body["user"]["id"]
    assert (
        api.delete("/v3/auth/tokens", token=token, headers={"X-Subject-Token": token}).status_code
        == 204
    )
    assert api.get("/compute/v2.1/flavors", token=token).status_code == 401


def test_tokens_are_stored_hashed(api: Api, engine: Engine) -> None:
    resp = api.post("/v3/auth/tokens", json=password_auth("admin", ADMIN_PASSWORD, "admin"))
    token = resp.headers["X-Subject-Token"]
    with Session(engine) as session:
        stored = set(session.scalars(select(Token.token_hash)))
        hashes = set(session.scalars(select(User.password_hash)))
    assert hash_token(token) in stored and token not in stored
    assert all(h.startswith("$argon2") for h in hashes)


def test_wrong_password_unknown_user_and_foreign_project_are_401(api: Api) -> None:
    for auth in (
        password_auth("demo", "wrong", "demo"),
        password_auth("nobody", "x", "demo"),
        password_auth("demo", DEMO_PASSWORD, "admin"),  # no role there
        password_auth("demo", DEMO_PASSWORD, "no-such-project"),
    ):
        resp = api.post("/v3/auth/tokens", json=auth)
        assert resp.status_code == 401, auth
        assert resp.json()["error"]["code"] == 401


def test_expired_token_is_refused(api: Api, engine: Engine, tokens: Tokens) -> None:
    resp = api.post("/v3/auth/tokens", json=password_auth("demo", DEMO_PASSWORD, "demo"))
    token = resp.headers["X-Subject-Token"]
    with Session(engine) as session, session.begin():
        tok = session.get(Token, hash_token(token))
        assert tok is not None
        session.execute(
            update(Token)
            .where(Token.token_hash == tok.token_hash)
            .values(expires_at=tok.issued_at - timedelta(seconds=1))
        )
    assert api.get("/networking/v2.0/networks", token=token).status_code == 401
    # validating someone's expired token: 404 as keystone says
    check = api.get("/v3/auth/tokens", token=tokens.admin, headers={"X-Subject-Token": token})
    assert check.status_code == 404
    # the user's next login drops the expired token from the store
    api.post("/v3/auth/tokens", json=password_auth("demo", DEMO_PASSWORD, "demo"))
    with Session(engine) as session:
        assert session.get(Token, hash_token(token)) is None


def test_member_may_not_validate_another_users_token(api: Api, tokens: Tokens) -> None:
    resp = api.get("/v3/auth/tokens", token=tokens.demo, headers={"X-Subject-Token": tokens.admin})
    assert resp.status_code == 403


def test_hostile_auth_bodies_are_400_naming_the_field(api: Api) -> None:
    cases = [
        (b"{not json", "Malformed request body"),
        (b'{"auth": {"identity": {"methods": ["kerberos"]}}}', "auth.identity.methods"),
        (b'{"auth": {"identity": {"methods": ["password"]}, "extra": 1}}', "auth.extra"),
        (b'{"auth": "x"}', "auth"),
        (b"[]", "request body"),
    ]
    for raw, field in cases:
        resp = api.post(
            "/v3/auth/tokens", content=raw, headers={"Content-Type": "application/json"}
        )
        assert resp.status_code == 400, (raw, resp.text)
        assert field in resp.json()["error"]["message"], resp.text
    huge = password_auth("demo", "x" * 10_000, "demo")
    assert api.post("/v3/auth/tokens", json=huge).status_code == 400
    giant = b'{"auth": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    resp = api.post("/v3/auth/tokens", content=giant, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413


def test_no_token_is_401_in_each_services_error_shape(api: Api) -> None:
    compute = api.get("/compute/v2.1/servers")
    assert compute.status_code == 401 and "unauthorized" in compute.json()
    network = api.get("/networking/v2.0/networks")
    assert network.status_code == 401 and "NeutronError" in network.json()
    bogus = api.get("/compute/v2.1/servers", token="not-a-token")
    assert bogus.status_code == 401


def test_bootstrap_is_idempotent_and_resets_passwords(api: Api, engine: Engine) -> None:
    first = bootstrap(engine, "new-admin-password", "new-demo-password")
    again = bootstrap(engine, "new-admin-password", "new-demo-password")
    assert first == again
    assert first.admin.username == "admin" and first.demo.project_name == "demo"
    resp = api.post("/v3/auth/tokens", json=password_auth("admin", "new-admin-password", "admin"))
    assert resp.status_code == 201
    with Session(engine) as session:
        assert len(session.scalars(select(User).where(User.name == "admin")).all()) == 1


def test_projects_listing_is_for_admins_members_list_their_own(api: Api, tokens: Tokens) -> None:
    # Keystone's default policy: listing every project is an admin's; a member
    # asks for the projects it may scope to
    assert api.get("/v3/projects", token=tokens.demo).status_code == 403
    mine = api.get("/v3/auth/projects", token=tokens.demo).json()["projects"]
    assert [p["name"] for p in mine] == ["demo"]
    every = api.get("/v3/projects", token=tokens.admin).json()["projects"]
    assert {"admin", "demo", "other", "service"} <= {p["name"] for p in every}
