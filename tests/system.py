"""Skips for tests that need a system package, and the CI switch that forbids them.

On a laptop without libvirt or PostgreSQL such tests skip with a reason. CI sets
``PCIFLEET_REQUIRE_SYSTEM=1`` after installing the packages, and then a missing
package fails the test instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

REQUIRE_ENV = "PCIFLEET_REQUIRE_SYSTEM"


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``, or fail when CI requires every system package."""
    if required():
        pytest.fail(f"{reason} (and {REQUIRE_ENV} is set, so this may not skip)")
    pytest.skip(reason)


def need_command(name: str, package: str) -> str:
    """Path of command ``name``; skips (or fails in CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"`{name}` not found: install the Debian package {package}")
    return path
