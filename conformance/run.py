"""``make conformance``: OpenStack's own API tests (Tempest) against pcifleet.

Starts ``pcifleet up`` on a free port with a throw-away data directory, writes
tempest's admin into its store with pcifleet's own bootstrap code (tempest
makes every other account through the Identity API: dynamic credentials), makes the
resources the tests boot from (a shared network, an image, two flavors) through
the API, writes ``tempest.conf`` from what the service answers, runs the groups
of ``groups.toml`` minus ``exclude.txt`` in one ``tempest run``, and prints a
table per group. Exits non-zero when a test failed or the run itself broke.

Run with pcifleet's interpreter (``.venv/bin/python``); tempest lives in its own
venv (``TEMPEST_VENV``, default ``.venv-tempest``) because its pins clash with ours.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from pcifleet.api.bootstrap import ensure_project, ensure_user
from pcifleet.cli.database import open_store
from pcifleet.store.db import default_database_url

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ADMIN = "tempest-admin"  # the admin tempest makes its per-test projects and users with
PASSWORD = "tempest-secret"  # a throw-away store, gone when the run ends


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_admin(database_url: str) -> None:
    """Tempest's admin, written with pcifleet's own bootstrap code before the
    service starts; every other account tempest makes through the Identity API."""
    engine = open_store(database_url)
    with Session(engine) as session, session.begin():
        project = ensure_project(session, ADMIN, "tempest's admin project")
        ensure_user(session, ADMIN, PASSWORD, project, "admin")
    engine.dispose()


def start_service(
    pcifleet: Path, port: int, data_dir: Path, database_url: str, log: Path
) -> subprocess.Popen[bytes]:
    cmd = [
        str(pcifleet),
        "up",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--database",
        database_url,
        "--hosts",
        "2",
    ]
    proc = subprocess.Popen(
        cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"pcifleet up ended early; see {log}")
        try:
            if httpx.get(url + "/v3", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    sys.exit(f"pcifleet up did not answer within 90 s; see {log}")


class Admin:
    """Just enough of a client to make the resources the tests boot from."""

    def __init__(self, url: str, user: str, password: str) -> None:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": user, "domain": {"id": "default"}, "password": password}
                    },
                },
                "scope": {"project": {"name": user, "domain": {"id": "default"}}},
            }
        }
        r = httpx.post(url + "/v3/auth/tokens?nocatalog", json=body, timeout=30)
        r.raise_for_status()
        self.url = url
        self.headers = {"X-Auth-Token": r.headers["X-Subject-Token"]}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        r = httpx.request(
            method,
            self.url + path,
            headers=self.headers | kwargs.pop("headers", {}),
            timeout=60,
            **kwargs,
        )
        if r.status_code >= 400:
            sys.exit(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None


def make_resources(admin: Admin) -> dict[str, str]:
    """A shared network to boot on, an external one, an image, two flavors, and
    the ``manager`` role Keystone's bootstrap makes (tempest's project-manager
    persona asks for it by name)."""
    admin.call("POST", "/v3/roles", json={"role": {"name": "manager"}})
    net = admin.call(
        "POST",
        "/networking/v2.0/networks",
        json={"network": {"name": "tempest-net", "shared": True}},
    )
    admin.call(
        "POST",
        "/networking/v2.0/subnets",
        json={
            "subnet": {
                "network_id": net["network"]["id"],
                "cidr": "10.100.0.0/16",
                "ip_version": 4,
                "name": "tempest-subnet",
            }
        },
    )
    public = admin.call(
        "POST",
        "/networking/v2.0/networks",
        json={"network": {"name": "public", "router:external": True}},
    )
    image = admin.call(
        "POST",
        "/image/v2/images",
        json={
            "name": "tempest-image",
            "disk_format": "raw",
            "container_format": "bare",
            "visibility": "public",
        },
    )
    admin.call(
        "PUT",
        f"/image/v2/images/{image['id']}/file",
        content=b"\0" * 65536,
        headers={"Content-Type": "application/octet-stream"},
    )
    flavors = []
    for i, ram in ((1, 128), (2, 192)):
        admin.call(
            "POST",
            "/compute/v2.1/flavors",
            json={
                "flavor": {
                    "name": f"tempest-{i}",
                    "id": f"tempest-{i}",
                    "ram": ram,
                    "vcpus": 1,
                    "disk": 0,
                }
            },
        )
        flavors.append(f"tempest-{i}")
    return {
        "network": "tempest-net",
        "public_network_id": public["network"]["id"],
        "image": image["id"],
        "flavor": flavors[0],
        "flavor_alt": flavors[1],
    }


def tempest_conf(url: str, res: dict[str, str], log_file: Path, lock_dir: Path) -> str:
    """tempest.conf saying what pcifleet serves; every feature it lacks is off."""
    versions = httpx.get(url + "/compute/", timeout=10).json()["versions"]
    max_mv = max(
        (v["version"] for v in versions if v.get("version")),
        key=lambda s: tuple(map(int, s.split("."))),
    )
    return f"""\
[DEFAULT]
log_file = {log_file}
use_stderr = false

[oslo_concurrency]
lock_path = {lock_dir}

[auth]
use_dynamic_credentials = true
admin_username = {ADMIN}
admin_password = {PASSWORD}
admin_project_name = {ADMIN}
admin_domain_name = Default
default_credentials_domain_name = Default
create_isolated_networks = false
admin_domain_scope = false

[identity]
uri_v3 = {url}/v3
auth_version = v3
region = RegionOne
v3_endpoint_type = public
admin_role = admin
default_domain_id = default

[identity-feature-enabled]
api_v2 = false
api_v2_admin = false
api_v3 = true
api_extensions =
domain_specific_drivers = false
security_compliance = false
access_rules = false
trust = false
project_tags = false
application_credentials = false

[compute]
image_ref = {res["image"]}
image_ref_alt = {res["image"]}
flavor_ref = {res["flavor"]}
flavor_ref_alt = {res["flavor_alt"]}
fixed_network_name = {res["network"]}
min_microversion = 2.1
max_microversion = {max_mv}
build_timeout = 120
build_interval = 1
min_compute_nodes = 2

[compute-feature-enabled]
change_password = false
console_output = true
resize = true
pause = true
shelve = false
shelve_migrate = false
suspend = true
cold_migration = true
live_migration = true
live_migrate_back_and_forth = true
block_migration_for_live_migration = true
volume_backed_live_migration = false
metadata_service = false
vnc_console = false
spice_console = false
serial_console = false
rescue = false
stable_rescue = false
enable_instance_password = true
interface_attach = true
snapshot = false
personality = false
attach_encrypted_volume = false
config_drive = false
swap_volume = false
volume_multiattach = false
unified_limits = false
hostname_fqdn_sanitization = true

[image]
build_timeout = 60
build_interval = 1
container_formats = bare
disk_formats = raw,qcow2

[image-feature-enabled]
api_v2 = true
import_image = false
os_glance_reserved = true
image_format_enforcement = false
manage_locations = false
image_conversion = false

[network]
project_network_cidr = 10.200.0.0/16
project_network_mask_bits = 24
project_networks_reachable = false
public_network_id = {res["public_network_id"]}
floating_network_name = public
build_timeout = 60
build_interval = 1

[network-feature-enabled]
ipv6 = false
api_extensions = binding,provider,external-net,port-security,project-id,standard-attr-description
port_admin_state_change = true
port_security = false
floating_ips = false

[validation]
run_validation = false

[service_available]
nova = true
neutron = true
glance = true
cinder = false
swift = false
horizon = false
placement = false
keystone = true
"""


def make_workspace(venv: Path, workspace: Path) -> Path:
    """What ``tempest init`` makes, without registering it in ~/.tempest."""
    package = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import os, tempest; print(os.path.dirname(tempest.__file__))",
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.strip()
    (workspace / "etc").mkdir(parents=True)
    (workspace / ".stestr.conf").write_text(
        f"[DEFAULT]\ntest_path={package}/test_discover\ntop_dir={package}\ngroup_regex=([^\\.]*\\.)*\n"
    )
    return workspace / "etc" / "tempest.conf"


def read_exclusions(path: Path) -> list[tuple[str, str]]:
    """(test id, reason) from lines ``tempest.api.... # reason``."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        test, sep, reason = line.partition("#")
        if not sep or not reason.strip():
            sys.exit(f"{path}:{n}: every excluded test needs a reason after '#'")
        out.append((test.strip(), reason.strip()))
    return out


def group_of(test_id: str, groups: dict[str, list[str]]) -> str | None:
    for name, modules in groups.items():
        if any(test_id.startswith(m + ".") for m in modules):
            return name
    return None


def run_tempest(
    venv: Path, workspace: Path, conf: Path, includes: Path, excludes: Path, concurrency: int
) -> dict[str, str]:
    """Runs tempest; test id (without its tags) -> success / fail / skip."""
    subunit = workspace / "results.subunit"
    env = os.environ | {"TEMPEST_CONFIG_DIR": str(conf.parent), "TEMPEST_CONFIG": conf.name}
    with subunit.open("wb") as out:
        subprocess.run(
            [
                str(venv / "bin" / "tempest"),
                "run",
                "--config-file",
                str(conf),
                "--include-list",
                str(includes),
                "--exclude-list",
                str(excludes),
                "--concurrency",
                str(concurrency),
                "--subunit",
            ],
            cwd=workspace,
            stdout=out,
            env=env,
            check=False,
        )
    csv_text = subprocess.run(
        [str(venv / "bin" / "subunit2csv")],
        stdin=subunit.open("rb"),
        capture_output=True,
        check=False,
    ).stdout.decode()  # exits 1 when a test failed; the rows are what count
    results: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(csv_text)):
        test = row["test"].split("[", 1)[0]
        fixture = re.match(r"(setUpClass|tearDownClass) \((.+)\)", test)
        if fixture:  # a class that could not set up fails as one line, named by its class
            test = f"{fixture.group(2)}.{fixture.group(1)}"
        status = row["status"]
        if status in ("success", "xfail"):
            results[test] = "success"
        elif status == "skip":
            results.setdefault(test, "skip")
        else:
            results[test] = "fail"  # a class's setUpClass failure counts once, by its name
    return results


def print_table(results: dict[str, str], groups: dict[str, list[str]], excluded: int) -> int:
    counts: dict[str, Counter[str]] = {g: Counter() for g in groups}
    for test, status in results.items():
        group = group_of(test, groups) or "other"
        counts.setdefault(group, Counter())[status] += 1
    line = f"{'group':<18} {'passed':>7} {'failed':>7} {'skipped':>8}"
    print(line)
    print("-" * len(line))
    total: Counter[str] = Counter()
    for group, c in counts.items():
        total.update(c)
        print(f"{group:<18} {c['success']:>7} {c['fail']:>7} {c['skip']:>8}")
    print("-" * len(line))
    print(f"{'total':<18} {total['success']:>7} {total['fail']:>7} {total['skip']:>8}")
    print(f"excluded (exclude.txt): {excluded}")
    failed = sorted(t for t, s in results.items() if s == "fail")
    if failed:
        print("\nfailed:")
        for t in failed:
            print(f"  {t}")
    return total["fail"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tempest-venv",
        type=Path,
        default=Path(os.environ.get("TEMPEST_VENV", ROOT / ".venv-tempest")),
    )
    parser.add_argument(
        "--concurrency", type=int, default=int(os.environ.get("TEMPEST_CONCURRENCY", "3"))
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("PCIFLEET_CONFORMANCE_DATABASE"),
        help="SQLAlchemy URL of an empty database [default: SQLite in the temp dir]",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp dir (logs, tempest.conf)"
    )
    parser.add_argument("--group", action="append", help="run only these groups")
    parser.add_argument("--regex", help="run only tests matching this regex (within the groups)")
    args = parser.parse_args()
    args.tempest_venv = args.tempest_venv.resolve()  # tempest runs in its workspace dir

    groups = {
        name: g["modules"]
        for name, g in tomllib.loads((HERE / "groups.toml").read_text())["groups"].items()
    }
    if args.group:
        groups = {g: m for g, m in groups.items() if g in args.group}
    exclusions = read_exclusions(HERE / "exclude.txt")
    work = Path(tempfile.mkdtemp(prefix="pcifleet-tempest-"))
    data_dir = work / "data"
    data_dir.mkdir()
    database_url = args.database or default_database_url(data_dir)
    started = time.monotonic()
    write_admin(database_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_service(
        ROOT / ".venv" / "bin" / "pcifleet", port, data_dir, database_url, work / "pcifleet.log"
    )
    try:
        admin = Admin(url, ADMIN, PASSWORD)
        res = make_resources(admin)
        workspace = work / "workspace"
        conf = make_workspace(args.tempest_venv, workspace)
        conf.write_text(tempest_conf(url, res, work / "tempest.log", work / "locks"))
        includes = work / "include.txt"
        modules = [m for ms in groups.values() for m in ms]
        suffix = f".*{args.regex}" if args.regex else ""
        includes.write_text("".join(f"^{re.escape(m)}\\.{suffix}\n" for m in modules))
        excludes = work / "exclude.txt"
        excludes.write_text(
            "".join(f"^{re.escape(t)}(\\[|\\.|$)\n" for t, _ in exclusions) or "^$\n"
        )
        results = run_tempest(
            args.tempest_venv, workspace, conf, includes, excludes, args.concurrency
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    took = time.monotonic() - started
    print(f"\nTempest 47.0.0 against pcifleet ({took:.0f} s, concurrency {args.concurrency})\n")
    failures = print_table(results, groups, len(exclusions))
    if not results:
        print(f"no test ran; see {work}")
        return 2
    if args.keep or failures:
        print(f"\nlogs, tempest.conf and results: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
