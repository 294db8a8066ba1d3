"""Keypairs with the real ``openstack`` CLI against ``pcifleet up``: a generated
key saved by the CLI, an imported one, list/show/delete, and a server booted
with ``--key-name``."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from .helpers import Api, OscRunner, osc_json, osc_ok, run_osc

pytestmark = pytest.mark.slow


def md5_fingerprint(public_line: str) -> str:
    digest = hashlib.md5(base64.b64decode(public_line.split()[1])).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def test_keypair_create_import_list_delete_and_boot_with_key_name(
    cli: OscRunner, api: Api, tmp_path: Path
) -> None:
    private_file = tmp_path / "kp-gen.pem"
    made = osc_json(cli, "keypair", "create", "--private-key", str(private_file), "kp-gen")
    assert made["name"] == "kp-gen"
    # this CLI makes the key itself (OpenSSH format) and imports the public half;
    # pcifleet's own generation is in tests/api/test_keypairs.py
    private = serialization.load_ssh_private_key(private_file.read_bytes(), None)
    shown = osc_json(cli, "keypair", "show", "kp-gen")
    assert shown["type"] == "ssh" and shown["fingerprint"] == made["fingerprint"]
    stored = osc_ok(cli, "keypair", "show", "--public-key", "kp-gen").split()
    mine = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert " ".join(stored[:2]) == mine.decode()
    assert made["fingerprint"] == md5_fingerprint(mine.decode())

    line = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    public_file = tmp_path / "kp-imp.pub"
    public_file.write_text(line + " me@laptop\n")
    imported = osc_json(cli, "keypair", "create", "--public-key", str(public_file), "kp-imp")
    assert imported["fingerprint"] == md5_fingerprint(line)
    listed = {k["Name"]: k["Fingerprint"] for k in osc_json(cli, "keypair", "list")}
    assert listed == {"kp-gen": made["fingerprint"], "kp-imp": imported["fingerprint"]}
    again = run_osc(cli, "keypair", "create", "--public-key", str(public_file), "kp-imp")
    assert again.returncode != 0 and "already exists" in again.stderr, again.stderr

    net = api.network("kp-net", "physnet2", 230)
    api.flavor("kp.small")
    api.image("kp-tiny")
    port = api.direct_port(net, "kp-port")
    boot = ("server", "create", "--flavor", "kp.small", "--image", "kp-tiny", "--port", port)
    refused = run_osc(cli, *boot, "--key-name", "no-such-key", "kp-vm")
    assert refused.returncode != 0 and "key_name" in refused.stderr, refused.stderr
    server = osc_json(cli, *boot, "--key-name", "kp-gen", "--wait", "kp-vm")
    assert server["status"] == "ACTIVE" and server["key_name"] == "kp-gen"
    assert osc_json(cli, "server", "show", "kp-vm")["key_name"] == "kp-gen"

    osc_ok(cli, "keypair", "delete", "kp-gen", "kp-imp")
    assert osc_json(cli, "keypair", "list") == []
    # the server keeps the key it was booted with
    assert osc_json(cli, "server", "show", "kp-vm")["key_name"] == "kp-gen"
    osc_ok(cli, "server", "delete", "--wait", "kp-vm")
    assert api.server(server["id"]) is None
