"""Compute os-keypairs as Nova serves them: generated and imported keys, their
fingerprints, per-user names, the microversion shapes, and ``key_name`` on
server create."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet.store.cloud import KeyPair, User
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, compute_error
from tests.api.test_servers import boot, boot_env, show

KP = f"{COMPUTE}/os-keypairs"
V21 = {"OpenStack-API-Version": "compute 2.1"}
V22 = {"OpenStack-API-Version": "compute 2.2"}
V210 = {"OpenStack-API-Version": "compute 2.10"}
V235 = {"OpenStack-API-Version": "compute 2.35"}


def md5_fingerprint(public_line: str) -> str:
    digest = hashlib.md5(base64.b64decode(public_line.split()[1])).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def user_id(engine: Engine, name: str) -> str:
    with Session(engine) as session:
        found = session.scalar(select(User.id).where(User.name == name))
    assert found is not None
    return found


def test_a_generated_ssh_key_is_answered_once_and_its_private_half_not_kept(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    resp = api.post(KP, token=tokens.demo, json={"keypair": {"name": "k1"}}, headers=V22)
    assert resp.status_code == 201, resp.text
    made = resp.json()["keypair"]
    assert set(made) == {"name", "public_key", "fingerprint", "user_id", "type", "private_key"}
    assert made["type"] == "ssh" and made["user_id"] == user_id(engine, "demo")
    # the halves belong together, and the fingerprint is the blob's MD5 in ssh's form
    private = serialization.load_pem_private_key(made["private_key"].encode(), None)
    public = serialization.load_ssh_public_key(made["public_key"].encode())
    assert isinstance(private, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey)
    assert private.public_key().public_numbers() == public.public_numbers()
    assert made["fingerprint"] == md5_fingerprint(made["public_key"])
    with Session(engine) as session:
        (row,) = session.scalars(select(KeyPair).where(KeyPair.name == "k1"))
        assert "PRIVATE" not in row.public_key
    shown = api.get(f"{KP}/k1", token=tokens.demo, headers=V22).json()["keypair"]
    assert "private_key" not in shown
    assert shown["public_key"] == made["public_key"] and shown["deleted"] is False
    assert isinstance(shown["id"], int) and shown["created_at"].endswith("Z")


def test_an_imported_key_keeps_its_text_and_gets_its_fingerprint(api: Api, tokens: Tokens) -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    public = line.decode() + " me@laptop"
    resp = api.post(
        KP, token=tokens.demo, json={"keypair": {"name": "mine", "public_key": public}}, headers=V21
    )
    assert resp.status_code == 200, resp.text  # 200 and no type before 2.2
    made = resp.json()["keypair"]
    assert "private_key" not in made and "type" not in made
    assert made["public_key"] == public and made["fingerprint"] == md5_fingerprint(public)
    listed = api.get(KP, token=tokens.demo, headers=V21).json()["keypairs"]
    assert listed == [
        {"keypair": {"name": "mine", "public_key": public, "fingerprint": made["fingerprint"]}}
    ]


def test_x509_keys_generated_and_imported(api: Api, tokens: Tokens) -> None:
    resp = api.post(
        KP, token=tokens.demo, json={"keypair": {"name": "cert", "type": "x509"}}, headers=V22
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()["keypair"]
    cert = x509.load_pem_x509_certificate(made["public_key"].encode())
    assert made["fingerprint"] == cert.fingerprint(hashes.SHA1()).hex(":")
    assert made["type"] == "x509"
    again = {"name": "cert2", "type": "x509", "public_key": made["public_key"]}
    resp = api.post(KP, token=tokens.demo, json={"keypair": again}, headers=V22)
    assert resp.json()["keypair"]["fingerprint"] == made["fingerprint"]
    # an ssh line is no certificate
    ssh_line = api.post(KP, token=tokens.demo, json={"keypair": {"name": "s"}}, headers=V22)
    wrong = {"name": "bad", "type": "x509", "public_key": ssh_line.json()["keypair"]["public_key"]}
    resp = api.post(KP, token=tokens.demo, json={"keypair": wrong}, headers=V22)
    assert "failed to generate fingerprint" in compute_error(resp, 400, "badRequest")


def test_bad_keypairs_are_400_and_nothing_is_stored(api: Api, tokens: Tokens) -> None:
    bodies = {
        "empty name": {"name": ""},
        "long name": {"name": "k" * 256},
        "unsafe name": {"name": "key_/.\\@:"},
        "name a number": {"name": 7},
        "junk key": {"name": "j", "public_key": "ssh-rsa JUNK nova@ubuntu"},
        "blank key": {"name": "j", "public_key": " "},
        "no base64": {"name": "j", "public_key": "ssh-rsa " + "A" * 2048 + " x@y"},
        "unknown key algorithm": {"name": "j", "public_key": "ssh-foo AAAAB3NzaC1yc2EAAAADAQAB"},
        "curve nobody has": {"name": "j", "public_key": "ecdsa-sha2-nistp999 AAAA"},
        "not ASCII": {"name": "j", "public_key": "ssh-rsa \u00e9\u00e9"},
        "not a certificate": {"name": "j", "type": "x509", "public_key": "-----BEGIN x"},
        "key a list": {"name": "j", "public_key": ["ssh-rsa"]},
        "NUL in name": {"name": "a\u0000b"},
        "unknown type": {"name": "j", "type": "pgp"},
        "type a list": {"name": "j", "type": ["ssh"]},
        "unknown field": {"name": "j", "colour": "red"},
    }
    for why, body in bodies.items():
        resp = api.post(KP, token=tokens.demo, json={"keypair": body}, headers=V22)
        assert resp.status_code == 400, (why, resp.text)
    # type is 2.2's, user_id 2.10's
    resp = api.post(
        KP, token=tokens.demo, json={"keypair": {"name": "t", "type": "ssh"}}, headers=V21
    )
    assert "'type' was unexpected" in compute_error(resp, 400, "badRequest")
    assert api.get(KP, token=tokens.demo, headers=V22).json() == {"keypairs": []}


def test_names_are_per_user_and_a_duplicate_is_409(api: Api, tokens: Tokens) -> None:
    body = {"keypair": {"name": "same"}}
    assert api.post(KP, token=tokens.demo, json=body, headers=V22).status_code == 201
    resp = api.post(KP, token=tokens.demo, json=body, headers=V22)
    assert compute_error(resp, 409, "conflictingRequest") == "Key pair 'same' already exists."
    # another user has their own namespace, and does not see demo's
    assert api.post(KP, token=tokens.alice, json=body, headers=V22).status_code == 201
    assert api.get(f"{KP}/same", token=tokens.alice, headers=V22).status_code == 200
    assert api.delete(f"{KP}/same", token=tokens.alice, headers=V22).status_code == 204
    assert api.get(f"{KP}/same", token=tokens.alice).status_code == 404
    assert api.get(f"{KP}/same", token=tokens.demo).status_code == 200
    resp = api.delete(f"{KP}/same", token=tokens.demo, headers=V21)
    assert resp.status_code == 202  # 202 before 2.2
    resp = api.delete(f"{KP}/same", token=tokens.demo, headers=V22)
    assert "Keypair same not found for user" in compute_error(resp, 404, "itemNotFound")


def test_admins_manage_another_users_keypairs_from_2_10(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    demo = user_id(engine, "demo")
    body = {"keypair": {"name": "forDemo", "user_id": demo}}
    resp = api.post(KP, token=tokens.admin, json=body, headers=V210)
    assert resp.status_code == 201 and resp.json()["keypair"]["user_id"] == demo
    assert [k["keypair"]["name"] for k in api.get(KP, token=tokens.demo).json()["keypairs"]] == [
        "forDemo"
    ]
    assert api.get(KP, token=tokens.admin, headers=V210).json()["keypairs"] == []
    listed = api.get(f"{KP}?user_id={demo}", token=tokens.admin, headers=V210).json()
    assert [k["keypair"]["name"] for k in listed["keypairs"]] == ["forDemo"]
    shown = api.get(f"{KP}/forDemo?user_id={demo}", token=tokens.admin, headers=V210)
    assert shown.json()["keypair"]["user_id"] == demo
    # a member may not name another user
    admin = user_id(engine, "admin")
    resp = api.get(f"{KP}?user_id={admin}", token=tokens.demo, headers=V210)
    compute_error(resp, 403, "forbidden")
    resp = api.post(
        KP, token=tokens.demo, json={"keypair": {"name": "x", "user_id": admin}}, headers=V210
    )
    compute_error(resp, 403, "forbidden")
    resp = api.delete(f"{KP}/forDemo?user_id={demo}", token=tokens.admin, headers=V210)
    assert resp.status_code == 204
    assert api.get(KP, token=tokens.demo).json()["keypairs"] == []


def test_pages_of_keypairs_from_2_35(api: Api, tokens: Tokens) -> None:
    for name in ("c", "a", "b"):
        api.post(KP, token=tokens.demo, json={"keypair": {"name": name}}, headers=V22)
    page = api.get(f"{KP}?limit=2", token=tokens.demo, headers=V235).json()
    assert [k["keypair"]["name"] for k in page["keypairs"]] == ["a", "b"]
    assert page["keypairs_links"][0]["href"].endswith("/os-keypairs?limit=2&marker=b")
    rest = api.get(f"{KP}?limit=2&marker=b", token=tokens.demo, headers=V235).json()
    assert [k["keypair"]["name"] for k in rest["keypairs"]] == ["c"]
    assert "keypairs_links" not in rest
    resp = api.get(f"{KP}?marker=zz", token=tokens.demo, headers=V235)
    assert "marker [zz] not found" in compute_error(resp, 400, "badRequest")
    # before 2.35 the paging parameters are not read
    assert len(api.get(f"{KP}?limit=1", token=tokens.demo, headers=V22).json()["keypairs"]) == 3


def test_a_server_boots_with_its_users_keypair_and_shows_it(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    api.post(KP, token=tokens.demo, json={"keypair": {"name": "boot-key"}}, headers=V22)
    api.post(KP, token=tokens.alice, json={"keypair": {"name": "alices"}}, headers=V22)
    # another user's keypair is no keypair of the caller's
    resp = boot(api, tokens.demo, env, "none", key_name="alices")
    assert compute_error(resp, 400, "badRequest") == "Invalid key_name provided."
    resp = boot(api, tokens.demo, env, "none", key_name="boot-key")
    assert resp.status_code == 202, resp.text
    server_id = resp.json()["server"]["id"]
    assert show(api, tokens.demo, server_id)["key_name"] == "boot-key"
    # the server keeps the name after the keypair is gone, as in Nova
    assert api.delete(f"{KP}/boot-key", token=tokens.demo).status_code == 202
    assert show(api, tokens.demo, server_id)["key_name"] == "boot-key"
    plain = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    assert show(api, tokens.demo, plain)["key_name"] is None


def test_limits_state_the_keypair_quota_and_create_keeps_it(api: Api, tokens: Tokens) -> None:
    limits = api.get(f"{COMPUTE}/limits", token=tokens.demo).json()["limits"]["absolute"]
    quota = limits["maxTotalKeypairs"]
    assert quota > 0
    key = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    for i in range(quota):
        resp = api.post(
            KP, token=tokens.demo, json={"keypair": {"name": f"k{i}", "public_key": key}}
        )
        assert resp.status_code == 200, resp.text
    resp = api.post(KP, token=tokens.demo, json={"keypair": {"name": "over", "public_key": key}})
    assert "too many key pairs" in compute_error(resp, 403, "forbidden")
