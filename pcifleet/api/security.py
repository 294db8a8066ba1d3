"""Password and token secrets: what is stored is never what the client holds.

Passwords are hashed with argon2id at OWASP's recommended parameters (19 MiB,
2 passes, 1 lane): memory-hard and salted, yet cheap enough that every CLI command,
which authenticates anew, does not wait on it. Tokens are 256-bit random values;
only their SHA-256 is stored, which is enough for a secret of that entropy and
cheap to check on every request.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token and its stored hash."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def new_password() -> str:
    return secrets.token_urlsafe(18)
