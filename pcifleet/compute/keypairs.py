"""Keypairs, as Nova's os-keypairs keeps them: per user, by name.

A keypair is made two ways: imported (the client gives the public key, which
must parse as the type says) or generated here (RSA 2048, the private half
answered once and never stored). Type ``ssh`` holds an OpenSSH public key and
its fingerprint is the MD5 of the key blob, ``x509`` a PEM certificate whose
fingerprint is the SHA-1 of its DER form, both written as Nova writes them
(lower-case hex pairs joined by ``:``). A server names a keypair of the
caller's own at boot; the server keeps the key as it was then.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import string
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pcifleet.compute.context import utcnow
from pcifleet.compute.errors import BadRequest, Conflict, Forbidden, NotFound
from pcifleet.store.cloud import KeyPair, User

KEY_TYPES = ("ssh", "x509")
# Nova's default quota of keypairs per user (``[quota] key_pairs``).
MAX_PER_USER = 100
NAME_MAX = 255
# What Nova lets a keypair name hold.
SAFE_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_- ")
GENERATED_BITS = 2048
GENERATED_COMMENT = "Generated-by-pcifleet"
CERT_DAYS = 3650


@dataclass(frozen=True)
class NewKey:
    """A public key with its fingerprint; ``private_key`` only when generated here."""

    public_key: str
    fingerprint: str
    private_key: str | None = None


def check_name(name: object) -> str:
    """The keypair name, or a 400 saying what is wrong with it."""
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX:
        raise BadRequest(
            "Keypair data is invalid: Keypair name must be string and between 1 and "
            f"{NAME_MAX} characters long"
        )
    if not set(name) <= SAFE_NAME_CHARS:
        raise BadRequest("Keypair data is invalid: Keypair name contains unsafe characters")
    return name


def check_type(key_type: object) -> str:
    if key_type not in KEY_TYPES:
        raise BadRequest(
            f"Invalid input for field 'keypair.type': {str(key_type)[:32]!r} is not one of "
            f"{', '.join(KEY_TYPES)}"
        )
    return str(key_type)


def _hex_pairs(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def ssh_fingerprint(public_key: str) -> str:
    """The MD5 fingerprint of an OpenSSH public key line; 400 if it is not one."""
    parts = public_key.strip().split()
    try:
        if len(parts) < 2:
            raise ValueError("not 'type base64 [comment]'")
        serialization.load_ssh_public_key(" ".join(parts[:2]).encode())
        blob = base64.b64decode(parts[1], validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError, UnsupportedAlgorithm):
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from None
    return _hex_pairs(hashlib.md5(blob, usedforsecurity=False).digest())


def x509_fingerprint(public_key: str) -> str:
    """The SHA-1 fingerprint of a PEM certificate; 400 if it is not one."""
    try:
        cert = x509.load_pem_x509_certificate(public_key.encode())
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm):
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from None
    return _hex_pairs(cert.fingerprint(hashes.SHA1()))  # Nova's fingerprint, not a signature


def imported(public_key: str, key_type: str) -> NewKey:
    """A key the client brought, checked against its type."""
    if not public_key.strip():
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint")
    if key_type == "ssh":
        return NewKey(public_key, ssh_fingerprint(public_key))
    return NewKey(public_key, x509_fingerprint(public_key))


def generated(key_type: str, subject: str) -> NewKey:
    """A new RSA key: for ``ssh`` its OpenSSH public line, for ``x509`` a
    self-signed certificate naming ``subject``; the private key in PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=GENERATED_BITS)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # what ssh and Nova's clients read
        serialization.NoEncryption(),
    ).decode()
    if key_type == "ssh":
        line = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        public = f"{line.decode()} {GENERATED_COMMENT}"
        return NewKey(public, ssh_fingerprint(public), private_pem)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pcifleet"),
            x509.NameAttribute(NameOID.COMMON_NAME, subject[:64] or "pcifleet"),
        ]
    )
    now = utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=CERT_DAYS))
        .sign(key, hashes.SHA256())
    )
    public = cert.public_bytes(serialization.Encoding.PEM).decode()
    return NewKey(public, x509_fingerprint(public), private_pem)


def owner(session: Session, caller_id: str, is_admin: bool, user_id: str | None) -> str:
    """Whose keypairs a request is about: the caller's own, or (admins only,
    from 2.10) the user named by ``user_id``."""
    if user_id is None or user_id == caller_id:
        return caller_id
    if not is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:os-keypairs to be performed.")
    if session.get(User, user_id) is None:
        raise BadRequest(f"Invalid input for field 'user_id': user {user_id[:64]} not found")
    return user_id


def create(session: Session, user_id: str, name: str, key_type: str, key: NewKey) -> KeyPair:
    """Store the keypair; 409 if the user has one of that name, 403 over quota."""
    held = session.scalar(select(func.count()).where(KeyPair.user_id == user_id))
    if (held or 0) >= MAX_PER_USER:
        raise Forbidden("Quota exceeded, too many key pairs.")
    if _find(session, user_id, name) is not None:
        raise Conflict(f"Key pair '{name}' already exists.")
    row = KeyPair(
        user_id=user_id,
        name=name,
        type=key_type,
        public_key=key.public_key,
        fingerprint=key.fingerprint,
        created_at=utcnow(),
    )
    try:
        with session.begin_nested():  # a racing create of the same name loses here
            session.add(row)
    except IntegrityError:
        raise Conflict(f"Key pair '{name}' already exists.") from None
    return row


def _find(session: Session, user_id: str, name: str) -> KeyPair | None:
    return session.scalar(select(KeyPair).where(KeyPair.user_id == user_id, KeyPair.name == name))


def get(session: Session, user_id: str, name: str) -> KeyPair:
    found = _find(session, user_id, name)
    if found is None:
        raise NotFound(f"Keypair {name[:255]} not found for user {user_id}")
    return found


def listing(
    session: Session, user_id: str, limit: int | None = None, marker: str | None = None
) -> list[KeyPair]:
    """The user's keypairs by name; ``marker`` is the name the page starts after."""
    query = select(KeyPair).where(KeyPair.user_id == user_id).order_by(KeyPair.name)
    if marker is not None:
        if _find(session, user_id, marker) is None:
            raise BadRequest(f"marker [{marker[:255]}] not found")
        query = query.where(KeyPair.name > marker)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def delete(session: Session, user_id: str, name: str) -> None:
    session.delete(get(session, user_id, name))


def for_boot(session: Session, user_id: str, name: str) -> KeyPair:
    """The caller's keypair a server create names; Nova's 400 when there is none."""
    found = _find(session, user_id, name)
    if found is None:
        raise BadRequest("Invalid key_name provided.")
    return found
