"""API fixtures: a real schema made by the migrations, the bootstrap users, an
in-process client.

Migrating and hashing passwords (argon2) is the slow part, so it happens once per
session into a template database that every test copies.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pcifleet.api.app import create_app
from pcifleet.api.bootstrap import bootstrap, ensure_project, ensure_user
from pcifleet.api.deps import MEMBER
from pcifleet.api.settings import ApiSettings
from pcifleet.store.db import make_engine, upgrade
from tests.api.helpers import Api, password_auth
from tests.api.inventory import sample_aliases

ADMIN_PASSWORD = "admin-secret"
DEMO_PASSWORD = "demo-secret"
ALICE_PASSWORD = "alice-secret"


@dataclass(frozen=True)
class Tokens:
    admin: str
    demo: str
    alice: str  # a member of another project ("other")


@dataclass
class Template:
    path: Path
    tokens: Tokens


def issue(api: Api, user: str, password: str, project: str) -> str:
    resp = api.post("/v3/auth/tokens", json=password_auth(user, password, project))
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"]


def issue_tokens(api: Api) -> Tokens:
    return Tokens(
        admin=issue(api, "admin", ADMIN_PASSWORD, "admin"),
        demo=issue(api, "demo", DEMO_PASSWORD, "demo"),
        alice=issue(api, "alice", ALICE_PASSWORD, "other"),
    )


def seed_users(engine: Engine) -> None:
    """The bootstrap users, and alice, a member of project "other"."""
    bootstrap(engine, ADMIN_PASSWORD, DEMO_PASSWORD)
    with Session(engine) as session, session.begin():
        ensure_user(session, "alice", ALICE_PASSWORD, ensure_project(session, "other"), MEMBER)


@contextmanager
def in_process_client(app: FastAPI) -> Iterator[Api]:
    """An ``Api`` calling ``app`` in-process over httpx's ASGI transport."""
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pcifleet.test"
        )
        yield Api(client, portal)
        portal.call(client.aclose)


def make_settings(url: str, data_dir: Path) -> ApiSettings:
    # the sample host's aliases: "gpu" is its NVIDIA 10de:1db4
    return ApiSettings(database_url=url, data_dir=data_dir, aliases=sample_aliases())


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    directory = tmp_path_factory.mktemp("template")
    path = directory / "pcifleet.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    seed_users(engine)
    app = create_app(make_settings(str(engine.url), directory), engine)
    with in_process_client(app) as api:
        tokens = issue_tokens(api)
    engine.dispose()
    return Template(path, tokens)


@pytest.fixture
def engine(template: Template, tmp_path: Path) -> Iterator[Engine]:
    path = tmp_path / "pcifleet.sqlite3"
    shutil.copy(template.path, path)
    eng = make_engine(f"sqlite:///{path}")
    yield eng
    eng.dispose()


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> ApiSettings:
    return make_settings(str(engine.url), tmp_path)


@pytest.fixture
def app(settings: ApiSettings, engine: Engine) -> FastAPI:
    return create_app(settings, engine)


@pytest.fixture
def api(app: FastAPI) -> Iterator[Api]:
    with in_process_client(app) as api:
        yield api


@pytest.fixture
def tokens(template: Template) -> Tokens:
    return template.tokens
