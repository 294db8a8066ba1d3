"""The bodies of the ``lock`` and ``rebuild`` server actions, checked as Nova's
JSON schemas check them, microversion by microversion: each reader returns
what the compute layer needs or raises a 400 naming the field."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, ValidationError

from pcifleet.api.errors import BadRequest
from pcifleet.compute.locks import REASON_MAX
from pcifleet.compute.schemas import Strict

Text255 = Annotated[str, Field(max_length=255)]
# Nova's metadata keys: 1 to 255 of these characters
MetadataKey = Annotated[str, Field(pattern=r"^[a-zA-Z0-9-_:. ]{1,255}$")]


def lock_reason(args: Any, mv: tuple[int, int]) -> str | None:
    """The ``locked_reason`` of a lock body. Before 2.73 Nova takes any value
    and no reason; from 2.73 null or ``{"locked_reason": <1-255 chars>}``."""
    if mv < (2, 73) or args is None:
        return None
    if not isinstance(args, dict):
        raise BadRequest("Invalid input for field 'lock': must be null or an object")
    unknown = set(args) - {"locked_reason"}
    if unknown:
        raise BadRequest(
            f"Additional properties are not allowed ('{sorted(map(str, unknown))[0][:64]}' "
            "was unexpected)"
        )
    if "locked_reason" not in args:
        return None
    reason = args["locked_reason"]
    if not isinstance(reason, str) or not 0 < len(reason) <= REASON_MAX:
        raise BadRequest(
            f"Invalid input for field 'lock.locked_reason': must be a string of 1 to "
            f"{REASON_MAX} characters"
        )
    return reason


class RebuildArgs(Strict):
    imageRef: Annotated[str, Field(max_length=255)]  # Nova's names
    name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    adminPass: Text255 | None = None
    metadata: Annotated[dict[MetadataKey, Text255], Field(max_length=128)] | None = None
    preserve_ephemeral: StrictBool | Literal["true", "false", "True", "False"] = False
    disk_config: Annotated[Literal["AUTO", "MANUAL"] | None, Field(alias="OS-DCF:diskConfig")] = (
        None
    )
    accessIPv4: IPv4Address | None = None
    accessIPv6: IPv6Address | None = None
    description: Text255 | None = None
    key_name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    user_data: Annotated[str | None, Field(max_length=65535)] = None


# Keys a rebuild body takes only from a microversion on (Nova's schemas).
_SINCE = {"description": (2, 19), "key_name": (2, 54), "user_data": (2, 57)}


@dataclass(frozen=True)
class Rebuild:
    """A rebuild body, checked: the image's id, the new name (None: kept),
    ``details`` (the server_details columns it sets), the keypair to give the
    server when ``key_given`` (``key_name`` None clears it) and the admin
    password to answer with (None: make one)."""

    image_id: str
    name: str | None
    admin_pass: str | None
    details: dict[str, Any] = field(default_factory=dict)
    key_given: bool = False
    key_name: str | None = None


def rebuild_args(args: Any, mv: tuple[int, int]) -> Rebuild:
    """The rebuild body as a ``Rebuild``; 400 naming the field when it does not fit."""
    if not isinstance(args, dict):
        raise BadRequest("Invalid input for field 'rebuild': must be an object")
    for key, since in _SINCE.items():
        if key in args and mv < since:
            raise BadRequest(f"Additional properties are not allowed ('{key}' was unexpected)")
    try:
        body = RebuildArgs.model_validate(args)
    except ValidationError as exc:
        raise BadRequest(_first_error(exc)) from None
    image_id = _image_uuid(body.imageRef)
    given = body.model_fields_set
    details: dict[str, Any] = {}
    if body.metadata is not None:
        details["metadata_"] = dict(body.metadata)
    if "description" in given:
        details["description"] = body.description
    if "user_data" in given:
        if body.user_data is not None:
            _check_base64(body.user_data)
        details["user_data"] = body.user_data
    if "accessIPv4" in given:
        details["access_ip_v4"] = str(body.accessIPv4) if body.accessIPv4 else None
    if "accessIPv6" in given:
        details["access_ip_v6"] = str(body.accessIPv6) if body.accessIPv6 else None
    return Rebuild(
        image_id=image_id,
        name=body.name,
        admin_pass=body.adminPass,
        details=details,
        key_given="key_name" in given,
        key_name=body.key_name,
    )


def _image_uuid(ref: str) -> str:
    """Nova's rebuild takes an image's UUID (a trailing href part is tolerated, as
    old clients send links)."""
    tail = ref.rstrip("/").rsplit("/", 1)[-1]
    try:
        uuid.UUID(tail)
    except ValueError:
        raise BadRequest(
            f"Invalid input for field 'rebuild.imageRef': {tail[:64]!r} is not a 'uuid'"
        ) from None
    return tail


def _check_base64(text: str) -> None:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Invalid input for field 'rebuild.user_data': not valid base64") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in ("rebuild", *err.get("loc", ())))
    if err.get("type") == "extra_forbidden":
        return f"Additional properties are not allowed ('{where[8:][:64]}' was unexpected)"
    return f"Invalid input for field '{where[:128]}': {err.get('msg', 'invalid')}"
