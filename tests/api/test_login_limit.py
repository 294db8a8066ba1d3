"""Failed password logins are limited per user and per client address: past
the limit a login is a 429 with Retry-After, the right password included,
until the window ends; a good login clears its user's count."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet.api.app import create_app
from pcifleet.api.settings import ApiSettings
from pcifleet.store.cloud import LoginFailure
from tests.api.conftest import ALICE_PASSWORD, DEMO_PASSWORD, in_process_client
from tests.api.helpers import Api, password_auth


@pytest.fixture
def limited(settings: ApiSettings, engine: Engine) -> Iterator[Api]:
    strict = dataclasses.replace(
        settings, login_failures_per_user=3, login_failures_per_address=5, login_window_seconds=60
    )
    app: FastAPI = create_app(strict, engine)
    with in_process_client(app) as api:
        yield api


def login(api: Api, user: str, password: str, project: str) -> int:
    resp = api.post("/v3/auth/tokens", json=password_auth(user, password, project))
    if resp.status_code == 429:
        assert resp.json()["error"]["code"] == 429
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
    status: int = resp.status_code
    return status


def test_a_user_is_locked_after_its_failures_until_the_window_ends(
    limited: Api, engine: Engine
) -> None:
    assert [login(limited, "demo", "wrong", "demo") for _ in range(3)] == [401] * 3
    # the right password too: the guesser learns nothing more
    assert login(limited, "demo", DEMO_PASSWORD, "demo") == 429
    assert login(limited, "alice", ALICE_PASSWORD, "other") == 201  # another user
    with Session(engine) as session, session.begin():
        for row in session.scalars(select(LoginFailure)):
            row.window_start -= timedelta(seconds=61)
    assert login(limited, "demo", DEMO_PASSWORD, "demo") == 201


def test_a_good_login_clears_its_users_count(limited: Api) -> None:
    assert [login(limited, "demo", "wrong", "demo") for _ in range(2)] == [401] * 2
    assert login(limited, "demo", DEMO_PASSWORD, "demo") == 201
    assert [login(limited, "demo", "wrong", "demo") for _ in range(2)] == [401] * 2
    assert login(limited, "demo", DEMO_PASSWORD, "demo") == 201


def test_an_address_is_limited_across_user_names(limited: Api) -> None:
    # unknown names count as well: no spraying one password over many users
    statuses = [login(limited, f"nobody{i}", "wrong", "demo") for i in range(5)]
    assert statuses == [401] * 5
    assert login(limited, "alice", ALICE_PASSWORD, "other") == 429
