"""Per-host agent credentials: an agent may act for its own host only.

The secret is made here and shown once; the store keeps its argon2 hash in
``hosts.agent_credential_hash``. Agents send it as ``Authorization: Bearer
<secret>``. A successful check is remembered (by the secret's SHA-256 and the
hash it matched) so a long-polling agent does not pay argon2 on every call.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine, insert, select, update

from pcifleet.api.deps import utcnow
from pcifleet.api.security import hash_password, hash_token, new_password, verify_password
from pcifleet.store.models import hosts_table as H

_verified: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def set_agent_credential(engine: Engine, host: str, secret: str | None = None) -> str:
    """Create or rotate host ``host``'s agent credential; returns the secret.

    A host not known yet is registered (generation 0, no devices) so its agent's
    first inventory report, with generation 0, is accepted.
    """
    secret = secret or new_password()
    digest = hash_password(secret)
    now = utcnow()
    with engine.begin() as conn:
        done = conn.execute(
            update(H).where(H.c.name == host).values(agent_credential_hash=digest, updated_at=now)
        ).rowcount
        if done == 0:
            conn.execute(
                insert(H).values(
                    name=host,
                    pci_stats=[],
                    generation=0,
                    agent_credential_hash=digest,
                    created_at=now,
                    updated_at=now,
                )
            )
    return secret


def agent_may_act_for(engine: Engine, host: str, secret: str) -> bool:
    """True when ``secret`` is host ``host``'s current agent credential."""
    with engine.connect() as conn:
        stored = conn.execute(
            select(H.c.agent_credential_hash).where(H.c.name == host)
        ).scalar_one_or_none()
    if not stored:
        return False
    key = (host, hash_token(secret))
    with _lock:
        if _verified.get(key) == stored:
            return True
    if not verify_password(stored, secret):
        return False
    with _lock:
        _verified[key] = stored
    return True
