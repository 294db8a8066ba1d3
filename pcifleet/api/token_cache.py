"""What a token stands for, remembered for a moment, so a burst of requests
with one token does not read the token, its user, project, domains and role
assignments on every call.

An entry is kept at most ``TOKEN_CACHE_SECONDS`` and never past its token's
expiry. Any change to identity rows made through this process (a revoked
token, a disabled user or project, a role taken away) drops every entry read
before it (``pcifleet.store.identity_watch``); a change made by another
process sharing the database holds here within ``TOKEN_CACHE_SECONDS``, as
keystonemiddleware's token cache does with its own, longer, time.
Only successful checks are kept: an unknown or expired token is read again.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from pcifleet.compute.context import Context, utcnow
from pcifleet.store.identity_watch import IdentityWatch, identity_watch

TOKEN_CACHE_SECONDS = 2.0
MAX_ENTRIES = 4096


@dataclass(frozen=True)
class _Entry:
    context: Context
    generation: int
    until: float  # time.monotonic()


class TokenCache:
    """Token digest -> Context for one engine."""

    def __init__(self, watch: IdentityWatch, ttl: float = TOKEN_CACHE_SECONDS) -> None:
        self.watch = watch
        self.ttl = ttl
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> Context | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.generation != self.watch.generation or entry.until <= time.monotonic():
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return entry.context

    def put(self, digest: str, context: Context, generation: int, expires_at: datetime) -> None:
        """Keep ``context``, read when the watch stood at ``generation``."""
        left = (expires_at - utcnow()).total_seconds()
        if left <= 0 or generation != self.watch.generation:
            return
        entry = _Entry(context, generation, time.monotonic() + min(self.ttl, left))
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()  # rare: many tokens in a couple of seconds
            self._entries[digest] = entry


_caches: weakref.WeakKeyDictionary[Engine, TokenCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def token_cache(engine: Engine) -> TokenCache:
    """The engine's token cache (one per engine: tests run several stores)."""
    cache = _caches.get(engine)
    if cache is None:
        with _caches_lock:
            cache = _caches.get(engine)
            if cache is None:
                cache = _caches[engine] = TokenCache(identity_watch(engine))
    return cache
