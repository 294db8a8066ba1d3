"""Per-host agent credentials: an agent may act for its own host only.

``CallerDep`` says who calls pcifleet's own API: an admin (keystone token) or
the agent of one host. The secret is made here and shown once; the store keeps
its hash in ``hosts.agent_credential_hash``. Agents send it as
``Authorization: Bearer <secret>``.

A secret pcifleet makes is 144 random bits: no one guesses it from a hash, so
its stored form is a SHA-256 (``sha256$<hex>``), as for tokens, and checking it
costs microseconds. A slow, salted argon2 hash is for what a person might
choose; a short secret (an operator's own, under ``STRONG_SECRET_CHARS``) and
hashes stored before this rule still get one. A successful argon2 check is
remembered (by the secret's SHA-256 and the hash it matched) so a long-polling
agent does not pay argon2 on every call. Re-registering a host with the secret
it already has writes nothing, so ``pcifleet up`` on an existing data directory
does no work per host here.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine, insert, select, update

from pcifleet.api.deps import SessionDep, context_for_token, utcnow
from pcifleet.api.errors import Forbidden, Unauthorized
from pcifleet.api.input_check import id_number
from pcifleet.api.security import hash_password, hash_token, new_password, verify_password
from pcifleet.store.models import hosts_table as H
from pcifleet.store.models import tasks_table as T

# token_urlsafe(18), what new_password() makes, is 24 characters
STRONG_SECRET_CHARS = 24
SHA256_PREFIX = "sha256$"
_verified: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def agent_credential_hash(secret: str) -> str:
    """The stored form of an agent secret: SHA-256 for a strong one, else argon2."""
    if len(secret) >= STRONG_SECRET_CHARS:
        return SHA256_PREFIX + hash_token(secret)
    return hash_password(secret)


def _matches(stored: str, secret: str) -> bool:
    if stored.startswith(SHA256_PREFIX):
        return hmac.compare_digest(stored, SHA256_PREFIX + hash_token(secret))
    return verify_password(stored, secret)


def set_agent_credential(engine: Engine, host: str, secret: str | None = None) -> str:
    """Create or rotate host ``host``'s agent credential; returns the secret.

    A host not known yet is registered (generation 0, no devices) so its agent's
    first inventory report, with generation 0, is accepted.
    """
    secret = secret or new_password()
    set_agent_credentials(engine, {host: secret})
    return secret


def set_agent_credentials(engine: Engine, secrets: Mapping[str, str]) -> None:
    """``set_agent_credential`` for many hosts in one transaction; a host whose
    stored hash is already its secret's SHA-256 is left as it is."""
    if not secrets:
        return
    digests = {host: agent_credential_hash(secret) for host, secret in secrets.items()}
    now = utcnow()
    with engine.begin() as conn:
        stored = dict(
            conn.execute(
                select(H.c.name, H.c.agent_credential_hash).where(H.c.name.in_(list(digests)))
            ).all()
        )
        new = [h for h in digests if h not in stored]
        if new:
            conn.execute(
                insert(H),
                [
                    {
                        "name": host,
                        "pci_stats": [],
                        "generation": 0,
                        "agent_credential_hash": digests[host],
                        "created_at": now,
                        "updated_at": now,
                    }
                    for host in new
                ],
            )
        for host, digest in digests.items():
            if host in stored and stored[host] != digest:
                conn.execute(
                    update(H)
                    .where(H.c.name == host)
                    .values(agent_credential_hash=digest, updated_at=now)
                )


def agent_may_act_for(engine: Engine, host: str, secret: str) -> bool:
    """True when ``secret`` is host ``host``'s current agent credential."""
    with engine.connect() as conn:
        stored = conn.execute(
            select(H.c.agent_credential_hash).where(H.c.name == host)
        ).scalar_one_or_none()
    if not stored:
        return False
    if stored.startswith(SHA256_PREFIX):
        return _matches(stored, secret)
    key = (host, hash_token(secret))
    with _lock:
        if _verified.get(key) == stored:
            return True
    if not verify_password(stored, secret):
        return False
    with _lock:
        _verified[key] = stored
    return True


class Caller:
    """An admin (keystone token) or the agent of one host (bearer credential)."""

    def __init__(self, *, admin: bool, host: str | None) -> None:
        self.admin = admin
        self.host = host

    def require_host(self, host: str) -> None:
        if not self.admin and self.host != host:
            raise Forbidden(
                f"this credential may not act for host {host[:64]}", kind="pcifleet.forbidden"
            )

    def require_admin(self) -> None:
        if not self.admin:
            raise Forbidden("admins only", kind="pcifleet.forbidden")


def get_caller(request: Request, session: SessionDep) -> Caller:
    token = request.headers.get("x-auth-token")
    if token:
        ctx = context_for_token(session, token, cached=True)
        return Caller(admin=ctx.is_admin, host=None)
    auth = request.headers.get("authorization", "")
    scheme, _, secret = auth.partition(" ")
    if scheme.lower() != "bearer" or not secret or len(secret) > 512:
        raise Unauthorized("give X-Auth-Token (admin) or Authorization: Bearer <host credential>")
    host = request.path_params.get("host")
    if host is None:
        task_id = id_number(str(request.path_params.get("task_id", "")))
        if task_id is not None:
            host = _host_of_task(request.app.state.engine, task_id)
    if host is None or not agent_may_act_for(request.app.state.engine, host, secret.strip()):
        raise Unauthorized("the host credential is not valid for this host")
    return Caller(admin=False, host=host)


def _host_of_task(engine: Engine, task_id: int) -> str | None:
    # A short read of its own: the handler's session must not hold a connection
    # while the request waits for a worker thread.
    with engine.connect() as conn:
        found = conn.execute(select(T.c.host).where(T.c.id == task_id)).scalar()
    return str(found) if found is not None else None


CallerDep = Annotated[Caller, Depends(get_caller)]
