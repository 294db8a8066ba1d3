"""The bodies of the move actions (``migrate``, ``resize``, ``evacuate``,
``os-migrateLive``) checked as Nova's JSON schemas check them, microversion by
microversion; each reader returns what the compute layer needs or raises a
400 naming the field."""

from __future__ import annotations

from typing import Any

from pcifleet.api.errors import BadRequest


def move_args(name: str, args: Any, mv: tuple[int, int]) -> tuple[str | None, str | None]:
    """(flavorRef, host) of a move's body, checked as Nova's schemas do."""
    if name == "resize":
        if not isinstance(args, dict) or not isinstance(args.get("flavorRef"), str | int):
            raise BadRequest("Invalid input for field 'resize.flavorRef': it is required")
        unknown = set(args) - {"flavorRef", "OS-DCF:diskConfig"}
        if unknown:
            raise BadRequest(f"Additional properties are not allowed ({sorted(unknown)[0]!r})")
        return str(args["flavorRef"])[:255], None
    if args == {}:  # what openstacksdk and tempest send for "no arguments"
        args = None
    if name == "migrate" and args is not None:
        if not isinstance(args, dict) or set(args) - {"host"} or mv < (2, 56):
            raise BadRequest("Invalid input for field 'migrate': only 'host' (from 2.56)")
        host = args.get("host")
        if host is not None and (not isinstance(host, str) or not 0 < len(host) <= 255):
            raise BadRequest("Invalid input for field 'migrate.host': a host name")
        return None, host
    if args is not None:
        raise BadRequest(f"Invalid input for field '{name}': must be null or {{}}")
    return None, None


# evacuate's body keys by microversion (Nova's schemas): onSharedStorage until
# 2.13, force from 2.29 until 2.67.
def _evacuate_keys(mv: tuple[int, int]) -> set[str]:
    keys = {"host", "adminPass"}
    if mv < (2, 14):
        keys.add("onSharedStorage")
    if (2, 29) <= mv < (2, 68):
        keys.add("force")
    return keys


def evacuate_host(args: Any, mv: tuple[int, int]) -> str | None:
    """The host an evacuate body names, checked as Nova's schemas do."""
    if not isinstance(args, dict):
        raise BadRequest("Invalid input for field 'evacuate': must be an object")
    unknown = set(args) - _evacuate_keys(mv)
    if unknown:
        raise BadRequest(f"Additional properties are not allowed ({sorted(unknown)[0]!r})")
    if mv < (2, 14) and not isinstance(args.get("onSharedStorage"), bool):
        raise BadRequest("Invalid input for field 'evacuate.onSharedStorage': it is required")
    if args.get("onSharedStorage") is True:
        raise BadRequest("Invalid input for field 'evacuate.onSharedStorage': "
                         "pcifleet hosts share no storage")  # fmt: skip
    for key in ("adminPass", "host"):
        value = args.get(key)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 255):
            raise BadRequest(f"Invalid input for field 'evacuate.{key}': a non-empty string")
    if "force" in args and not isinstance(args["force"], bool):
        raise BadRequest("Invalid input for field 'evacuate.force': a boolean")
    host = args.get("host")
    return host if isinstance(host, str) else None


def live_host(args: Any, mv: tuple[int, int]) -> str | None:
    """The host an os-migrateLive body names, checked as Nova's schemas do."""
    if not isinstance(args, dict):
        raise BadRequest("Invalid input for field 'os-migrateLive': must be an object")
    keys = {"host", "block_migration"}
    if mv < (2, 25):
        keys.add("disk_over_commit")
    if (2, 30) <= mv < (2, 68):
        keys.add("force")
    unknown = set(args) - keys
    if unknown:
        raise BadRequest(f"Additional properties are not allowed ({sorted(unknown)[0]!r})")
    for key in ("host", "block_migration"):
        if key not in args:
            raise BadRequest(f"Invalid input for field 'os-migrateLive.{key}': it is required")
    block = args["block_migration"]
    if not (isinstance(block, bool) or (block == "auto" and mv >= (2, 25))):
        raise BadRequest("Invalid input for field 'os-migrateLive.block_migration': "
                         "a boolean, or 'auto' (from 2.25)")  # fmt: skip
    host = args["host"]
    if host is not None and (not isinstance(host, str) or not 0 < len(host) <= 255):
        raise BadRequest("Invalid input for field 'os-migrateLive.host': a host name or null")
    return host if isinstance(host, str) else None
