"""Agent credentials: how a host's secret is stored, checked and re-registered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from pcifleet.api.agents import (
    SHA256_PREFIX,
    agent_may_act_for,
    set_agent_credential,
    set_agent_credentials,
)
from pcifleet.api.security import hash_password, new_password
from pcifleet.store.db import default_database_url, make_engine, upgrade
from pcifleet.store.models import hosts_table as H


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(default_database_url(tmp_path))
    upgrade(eng)
    yield eng
    eng.dispose()


def stored(engine: Engine, host: str) -> tuple[str, object]:
    with engine.connect() as conn:
        row = conn.execute(
            select(H.c.agent_credential_hash, H.c.updated_at).where(H.c.name == host)
        ).one()
    return str(row[0]), row[1]


def test_a_made_secret_is_stored_as_sha256_and_only_it_acts_for_its_host(engine: Engine) -> None:
    secret = set_agent_credential(engine, "compute-1")
    digest, _ = stored(engine, "compute-1")
    assert digest.startswith(SHA256_PREFIX) and secret not in digest
    assert agent_may_act_for(engine, "compute-1", secret)
    assert not agent_may_act_for(engine, "compute-1", secret[:-1] + "x")
    assert not agent_may_act_for(engine, "compute-2", secret)


def test_a_short_secret_gets_argon2(engine: Engine) -> None:
    set_agent_credential(engine, "compute-1", "short-one")
    digest, _ = stored(engine, "compute-1")
    assert digest.startswith("$argon2id$")
    assert agent_may_act_for(engine, "compute-1", "short-one")
    assert not agent_may_act_for(engine, "compute-1", "short-two")


def test_an_argon2_hash_stored_before_still_verifies_and_is_replaced_on_register(
    engine: Engine,
) -> None:
    secret = new_password()
    set_agent_credential(engine, "compute-1", secret)
    with engine.begin() as conn:
        conn.execute(update(H).values(agent_credential_hash=hash_password(secret)))
    assert agent_may_act_for(engine, "compute-1", secret)
    set_agent_credentials(engine, {"compute-1": secret})
    assert stored(engine, "compute-1")[0].startswith(SHA256_PREFIX)
    assert agent_may_act_for(engine, "compute-1", secret)


def test_registering_many_hosts_again_with_their_secrets_writes_nothing(engine: Engine) -> None:
    secrets = {f"compute-{i}": new_password() for i in range(1, 6)}
    set_agent_credentials(engine, secrets)
    before = {h: stored(engine, h) for h in secrets}
    set_agent_credentials(engine, secrets)
    assert {h: stored(engine, h) for h in secrets} == before
    rotated = {**secrets, "compute-2": new_password()}
    set_agent_credentials(engine, rotated)
    assert not agent_may_act_for(engine, "compute-2", secrets["compute-2"])
    assert agent_may_act_for(engine, "compute-2", rotated["compute-2"])
    assert stored(engine, "compute-3") == before["compute-3"]
