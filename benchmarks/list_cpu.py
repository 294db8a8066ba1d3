"""CPU and SQL statements per list request, in-process: the fast loop for
making the lists cheaper, beside ``lists.py`` (which times them over HTTP).

Builds the API on a throw-away store, lets 16 hosts report the sample
inventory, boots one server for real (a ``direct`` port on physnet1, its
build finished by a stand-in agent), then copies that server's rows
(instance, details, port, address) to N servers spread over the hosts. Each
list is then called R times over httpx's ASGI transport, and the table gives
the process's CPU per call (every thread: the event loop and the handler's),
the SQL statements per call and the bytes answered.

    .venv/bin/python benchmarks/list_cpu.py                  # 1,000 servers, 30 calls
    .venv/bin/python benchmarks/list_cpu.py --database postgresql+psycopg://...
    .venv/bin/python benchmarks/list_cpu.py --spy out.txt --only 'servers/detail, all'

``--spy`` samples the timed calls only (not the setup) with ``py-spy``
(found on PATH), every thread, into collapsed stacks (``--format raw``).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import start_blocking_portal
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, event, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fleet import database

from pcifleet.api.app import create_app
from pcifleet.api.bootstrap import bootstrap
from pcifleet.api.settings import ApiSettings
from pcifleet.store.cloud import IpAllocation, Port, ServerDetails
from pcifleet.store.models import Instance
from tests.api.agent import FakeAgent
from tests.api.helpers import Api, create_network, create_port, create_subnet, password_auth
from tests.api.inventory import sample_aliases

COMPUTE = "/compute/v2.1"
NETWORK = "/networking/v2.0"
MV = {"OpenStack-API-Version": "compute 2.88"}
PASSWORD = "bench-secret"
console = Console(width=120)

# (label, path); {mid} is the id of the server in the middle of the list
LISTS = (
    ("servers/detail, all", COMPUTE + "/servers/detail"),
    ("servers/detail?limit=10", COMPUTE + "/servers/detail?limit=10"),
    ("servers/detail, 10 after a marker", COMPUTE + "/servers/detail?limit=10&marker={mid}"),
    ("servers, all", COMPUTE + "/servers"),
    ("servers?limit=10", COMPUTE + "/servers?limit=10"),
    ("ports?limit=10", NETWORK + "/ports?limit=10"),
)


class Statements:
    """Counts the SQL statements the engine runs."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


@contextmanager
def in_process(settings: ApiSettings, engine: Engine) -> Iterator[Api]:
    app = create_app(settings, engine)
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pcifleet.test"
        )
        yield Api(client, portal)
        portal.call(client.aclose)


def token(api: Api, user: str, project: str) -> str:
    resp = api.post("/v3/auth/tokens", json=password_auth(user, PASSWORD, project))
    resp.raise_for_status()
    return resp.headers["X-Subject-Token"]


def boot_one(api: Api, admin: str, demo: str, hosts: int) -> tuple[str, str]:
    """One ACTIVE server with a direct port; returns (server id, subnet id)."""
    agents = [FakeAgent(api, admin, f"compute-{i:02d}") for i in range(hosts)]
    for agent in agents:
        agent.report()
    flavor = api.post(
        f"{COMPUTE}/flavors",
        token=admin,
        json={"flavor": {"name": "m1", "ram": 1024, "vcpus": 1, "disk": 1}},
    ).json()["flavor"]["id"]
    image_body = {"name": "img", "visibility": "public", "disk_format": "raw"}
    image = api.post(
        "/image/v2/images", token=admin, json=image_body | {"container_format": "bare"}
    )
    api.put(f"/image/v2/images/{image.json()['id']}/file", token=admin, content=b"disk")
    net = create_network(
        api,
        admin,
        name="physnet1-100",
        shared=True,
        **{
            "provider:network_type": "vlan",
            "provider:physical_network": "physnet1",
            "provider:segmentation_id": 100,
        },
    )
    subnet = create_subnet(api, admin, net["id"], "10.100.0.0/16")
    port = create_port(api, demo, net["id"], **{"binding:vnic_type": "direct"})
    body = {
        "server": {
            "name": "vm-00000",
            "flavorRef": flavor,
            "imageRef": image.json()["id"],
            "networks": [{"port": port["id"]}],
        }
    }
    resp = api.post(f"{COMPUTE}/servers", token=demo, json=body, headers=MV)
    resp.raise_for_status()
    for agent in agents:
        agent.run_all()
    return resp.json()["server"]["id"], subnet["id"]


def copy_server(engine: Engine, server_id: str, subnet_id: str, copies: int, hosts: int) -> None:
    """``copies`` more servers made of ``server_id``'s rows, one second apart."""
    with engine.begin() as conn:
        inst = conn.execute(select(Instance.__table__).where(Instance.uuid == server_id)).one()
        details = conn.execute(
            select(ServerDetails.__table__).where(ServerDetails.instance_uuid == server_id)
        ).one()
        port = conn.execute(select(Port.__table__).where(Port.device_id == server_id)).one()
        base = ipaddress.ip_address("10.100.1.0")
        servers, detail_rows, ports, ips = [], [], [], []
        for i in range(1, copies + 1):
            new_id, port_id = str(uuid.uuid4()), str(uuid.uuid4())
            when = inst.created_at - timedelta(seconds=i)
            servers.append(
                inst._asdict()
                | {
                    "uuid": new_id,
                    "name": f"vm-{i:05d}",
                    "host": f"compute-{i % hosts:02d}",
                    "created_at": when,
                    "updated_at": when,
                }
            )
            detail_rows.append(details._asdict() | {"instance_uuid": new_id})
            ports.append(
                port._asdict()
                | {
                    "id": port_id,
                    "device_id": new_id,
                    "mac_address": f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                    "created_at": when,
                }
            )
            ips.append({"port_id": port_id, "subnet_id": subnet_id, "ip_address": str(base + i)})
        conn.execute(insert(Instance.__table__), servers)
        conn.execute(insert(ServerDetails.__table__), detail_rows)
        conn.execute(insert(Port.__table__), ports)
        conn.execute(insert(IpAllocation.__table__), ips)


@contextmanager
def sampled(out: str | None) -> Iterator[None]:
    """py-spy sampling this process meanwhile, when ``out`` names its file."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--spy needs py-spy on PATH")
    cmd = [spy, "record", "--format", "raw", "-r", "250", "-o", out, "--pid", str(os.getpid())]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the first timed call
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def measure(api: Api, tok: str, path: str, repeats: int, statements: Statements) -> dict[str, Any]:
    api.get(path, token=tok, headers=MV).raise_for_status()  # warm
    cpu, wall = [], []
    before = statements.count
    size = 0
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        resp = api.get(path, token=tok, headers=MV)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
        resp.raise_for_status()
        size = len(resp.content)
    return {
        "cpu_ms": statistics.median(cpu) * 1000,
        "wall_ms": statistics.median(wall) * 1000,
        "statements": (statements.count - before) / repeats,
        "bytes": size,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--database", default=None, help="database URL (default: temp SQLite)")
    parser.add_argument("--only", default=None, help="time only the list with this label")
    parser.add_argument("--spy", default=None, help="py-spy the timed calls into this file")
    args = parser.parse_args(argv)
    if args.servers < 1 or args.hosts < 1 or args.repeats < 1:
        parser.error("--servers, --hosts and --repeats must be >= 1")
    with ExitStack() as stack:
        engine = stack.enter_context(database(args.database))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pcifleet-listcpu-")))
        bootstrap(engine, PASSWORD, PASSWORD)
        settings = ApiSettings(database_url=str(engine.url), data_dir=tmp, aliases=sample_aliases())
        api = stack.enter_context(in_process(settings, engine))
        admin, demo = token(api, "admin", "admin"), token(api, "demo", "demo")
        with console.status(f"booting one server, copying it to {args.servers}"):
            server_id, subnet_id = boot_one(api, admin, demo, args.hosts)
            copy_server(engine, server_id, subnet_id, args.servers - 1, args.hosts)
        listed = api.get(f"{COMPUTE}/servers", token=demo).json()["servers"]
        mid = listed[len(listed) // 2]["id"]
        statements = Statements(engine)
        rows = []
        with sampled(args.spy):
            for label, path in LISTS:
                if args.only and label != args.only:
                    continue
                path = path.replace("{mid}", mid)
                rows.append((label, measure(api, demo, path, args.repeats, statements)))
    table = Table(
        title=f"lists in-process: {args.servers} servers on {args.hosts} hosts, "
        f"{args.repeats} calls each (medians)",
        title_justify="left",
    )
    for name in ("list", "CPU per call", "wall per call", "statements", "bytes"):
        table.add_column(name, justify="left" if name == "list" else "right")
    for label, m in rows:
        table.add_row(
            label,
            f"{m['cpu_ms']:.1f} ms",
            f"{m['wall_ms']:.1f} ms",
            f"{m['statements']:.1f}",
            f"{m['bytes']:,}",
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
