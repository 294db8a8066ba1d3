"""Scheduler fixtures: the store's per-test databases, and small fleets in them."""

from __future__ import annotations

from tests.store.conftest import blank_engine, engine

__all__ = ["blank_engine", "engine"]
