"""Layer 4: the store — SQLAlchemy tables, Alembic migrations, inventory and claims.

The database is the source of truth for which device belongs to which server.
Public entry points:

- ``make_engine(url)``, ``default_database_url(data_dir)``, ``session_factory(engine)``,
  ``upgrade(engine_or_url)`` (db.py);
- ``sync_inventory(engine, host, classified, seen_generation)``, ``heartbeat``,
  ``set_host_state`` (inventory.py);
- ``claim(engine, host, instance_uuid, requests)``, ``allocate``, ``free``,
  ``instance_devices`` (claims.py);
- ``check_consistency(engine)`` (checks.py).
"""

from pcifleet.store.checks import check_consistency
from pcifleet.store.claims import (
    ClaimedDevice,
    ClaimPlan,
    ClaimResult,
    FreeResult,
    allocate,
    claim,
    execute_claim,
    free,
    instance_devices,
    plan_claim,
)
from pcifleet.store.db import default_database_url, make_engine, session_factory, upgrade
from pcifleet.store.errors import (
    ClaimConflict,
    HostNotFound,
    InvalidInventory,
    StaleGeneration,
    StoreError,
)
from pcifleet.store.inventory import SyncResult, heartbeat, set_host_state, sync_inventory
from pcifleet.store.snapshot import HostSnapshot, load_host, load_hosts

__all__ = [
    "ClaimConflict",
    "ClaimPlan",
    "ClaimResult",
    "ClaimedDevice",
    "FreeResult",
    "HostNotFound",
    "HostSnapshot",
    "InvalidInventory",
    "StaleGeneration",
    "StoreError",
    "SyncResult",
    "allocate",
    "check_consistency",
    "claim",
    "default_database_url",
    "execute_claim",
    "free",
    "heartbeat",
    "instance_devices",
    "load_host",
    "load_hosts",
    "make_engine",
    "plan_claim",
    "session_factory",
    "set_host_state",
    "sync_inventory",
    "upgrade",
]
