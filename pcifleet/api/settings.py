"""Settings of the API service: where the store is, how the service names itself.

A plain dataclass so ``pcifleet up``, tests and the uvicorn factory build it the
same way; ``from_env`` reads ``PCIFLEET_*`` variables for ``uvicorn --factory``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pcifleet.compute.config import ComputeConfig
from pcifleet.pci import Alias, parse_aliases

DEFAULT_TOKEN_TTL = 3600
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_CONCURRENCY = 32
# The largest server disk a cold move's source may hand over (its overlay,
# which grows up to the flavor's root disk).
DEFAULT_MOVE_DISK_MAX = 64 * 1024**3
# Worker threads and connections beyond the requests' own: background tasks,
# lifespan workers, the scheduler's kept claim connection, long-polls' checks.
BACKGROUND_HEADROOM = 8
# Seconds a request waits for a pooled connection before a 503 (not 30 s then 500).
DB_POOL_TIMEOUT = 10.0


@dataclass
class ApiSettings:
    """What the API needs to run; every field has a default except the database."""

    database_url: str
    # images are kept under data_dir/images/<id>
    data_dir: Path = field(default_factory=lambda: Path("data"))
    # Base URL put in the service catalog ("http://127.0.0.1:8774"); None: taken
    # from each request, right for a single listener.
    public_base_url: str | None = None
    token_ttl_seconds: int = DEFAULT_TOKEN_TTL
    # PCI aliases a flavor's pci_passthrough:alias may name
    aliases: dict[str, list[Alias]] = field(default_factory=dict)
    # where those aliases were defined, named when a flavor asks for another
    alias_source: str = "the controller's settings"
    region: str = "RegionOne"
    # largest JSON body accepted (image and disk uploads stream and are not limited by it)
    max_body_bytes: int = DEFAULT_MAX_BODY
    # largest disk a cold move's source may hand over (kept under data_dir/move-disks)
    move_disk_max_bytes: int = DEFAULT_MOVE_DISK_MAX
    # physical networks whose SR-IOV ports get vif_type 802.1qbh instead of hw_veb
    qbh_physical_networks: frozenset[str] = frozenset()
    # longest wait of an agent's task long-poll, in seconds
    task_poll_max_seconds: float = 30.0
    # a host whose agent has not reported for this long is down (not scheduled;
    # Nova's service_down_time)
    host_down_after_seconds: float = 60.0
    # how the scheduler picks among hosts: "pack" or "spread"
    scheduler_mode: str = "pack"
    # a server still building this long after its creation goes to ERROR (0: never)
    build_timeout_seconds: float = 600.0
    # how long an agent may hold a task before it is handed out again
    task_lease_seconds: float = 300.0
    # threads taking the controller's jobs (scheduling...) in this process
    job_workers: int = 2
    # seconds between reconciler passes (0: no reconciler thread)
    reconcile_interval_seconds: float = 15.0
    # run a request's new job right after its response (False: leave it to the
    # worker threads; tests use that to step through a boot by hand)
    run_jobs_inline: bool = True
    # how long POST os-interface waits for the host to plug the port before it
    # answers 202 and lets the attach finish on its own
    interface_attach_wait_seconds: float = 60.0
    # failed password logins heard per user name and per client address in
    # login_window_seconds; past them a login is a 429 until the window ends
    login_failures_per_user: int = 10
    login_failures_per_address: int = 100
    login_window_seconds: int = 300
    # answer a create or a rebuild with the server's adminPass (Nova's
    # [api] enable_instance_password); no pcifleet image has an agent to set it
    enable_instance_password: bool = True

    def compute_config(self) -> ComputeConfig:
        """The compute layer's view of these settings."""
        return ComputeConfig(
            build_timeout=self.build_timeout_seconds,
            task_lease=self.task_lease_seconds,
            host_down_after=self.host_down_after_seconds,
            job_workers=self.job_workers,
            reconcile_interval=self.reconcile_interval_seconds,
            qbh_physical_networks=self.qbh_physical_networks,
            data_dir=self.data_dir,
        )

    # Requests served at once. The worker threads and the database pool are
    # sized from it (below); a quarter of it is kept for the host agents' routes.
    # More requests wait in a queue (async, holding nothing) up to
    # admission_wait_seconds, then get 503 with Retry-After.
    max_concurrent_requests: int = DEFAULT_CONCURRENCY
    admission_wait_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.max_concurrent_requests < 4:
            raise ValueError("max_concurrent_requests: must be at least 4")
        if self.admission_wait_seconds < 0:
            raise ValueError("admission_wait_seconds: must not be negative")

    @property
    def agent_reserved_requests(self) -> int:
        """Of max_concurrent_requests, the slots only agents' routes may take."""
        return max(2, self.max_concurrent_requests // 4)

    @property
    def admission_queue(self) -> int:
        """Requests that may wait for a slot; beyond it, 503 at once."""
        return 4 * self.max_concurrent_requests

    @property
    def worker_threads(self) -> int:
        """anyio's worker-thread limit: one per admitted request (so none waits for
        a thread), plus headroom for background work and long-polls' short checks."""
        return self.max_concurrent_requests + BACKGROUND_HEADROOM

    @property
    def db_pool(self) -> dict[str, Any]:
        """``create_engine`` pool options: a connection per worker thread, and
        overflow for a request that opens a second one while its session holds the
        first, so the pool is never what a request waits on."""
        return {
            "pool_size": self.worker_threads,
            "max_overflow": self.max_concurrent_requests,
            "pool_timeout": DB_POOL_TIMEOUT,
        }

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ApiSettings:
        """Settings from PCIFLEET_DATABASE_URL, PCIFLEET_DATA_DIR, PCIFLEET_PUBLIC_URL,
        PCIFLEET_TOKEN_TTL, PCIFLEET_PCI_ALIASES (a JSON list of alias objects),
        PCIFLEET_MAX_CONCURRENT_REQUESTS, PCIFLEET_ADMISSION_WAIT,
        PCIFLEET_HOST_DOWN_AFTER, PCIFLEET_MOVE_DISK_MAX_BYTES,
        PCIFLEET_QBH_PHYSICAL_NETWORKS (comma-separated) and
        PCIFLEET_ENABLE_INSTANCE_PASSWORD (false or 0 leaves adminPass out)."""
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("PCIFLEET_DATA_DIR", "data"))
        url = env.get("PCIFLEET_DATABASE_URL") or f"sqlite:///{data_dir / 'pcifleet.sqlite'}"
        aliases_text = env.get("PCIFLEET_PCI_ALIASES", "")
        entries: list[Any] = json.loads(aliases_text) if aliases_text else []
        return cls(
            database_url=url,
            data_dir=data_dir,
            public_base_url=env.get("PCIFLEET_PUBLIC_URL") or None,
            token_ttl_seconds=int(env.get("PCIFLEET_TOKEN_TTL", DEFAULT_TOKEN_TTL)),
            aliases=parse_aliases(entries),
            alias_source="PCIFLEET_PCI_ALIASES",
            max_concurrent_requests=int(
                env.get("PCIFLEET_MAX_CONCURRENT_REQUESTS", DEFAULT_CONCURRENCY)
            ),
            admission_wait_seconds=float(env.get("PCIFLEET_ADMISSION_WAIT", 10.0)),
            host_down_after_seconds=float(env.get("PCIFLEET_HOST_DOWN_AFTER", 60.0)),
            move_disk_max_bytes=int(env.get("PCIFLEET_MOVE_DISK_MAX_BYTES", DEFAULT_MOVE_DISK_MAX)),
            qbh_physical_networks=frozenset(
                n.strip()
                for n in env.get("PCIFLEET_QBH_PHYSICAL_NETWORKS", "").split(",")
                if n.strip()
            ),
            enable_instance_password=env.get("PCIFLEET_ENABLE_INSTANCE_PASSWORD", "true")
            .strip()
            .lower()
            not in ("0", "false", "no", "off"),
        )
