"""Shared pieces of the input schemas: every input model forbids unknown fields
and refuses a NUL character anywhere in its body."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

Name = Annotated[str, Field(max_length=255)]
Description = Annotated[str, Field(max_length=1024)]
Id = Annotated[str, Field(min_length=1, max_length=255)]


def has_nul(value: Any) -> bool:
    """Whether a NUL is in any key or string of ``value``: the walk of
    ``nul_path`` without making a path for every item (every body is checked,
    and nested models check their part again, so this runs often)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return True
                stack.append(sub)
        elif isinstance(item, list):
            stack.extend(item)
    return False


def nul_path(value: Any) -> str | None:
    """The dotted path of the first key or string holding a NUL, or None.

    PostgreSQL refuses NUL in text (SQLite keeps it and truncates in places), so
    a body carrying one is refused whole, naming the field, before any of it is
    stored. Iterative: a body may nest as deep as the JSON parser allowed.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path or "request body"
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return f"{path}.{key!r}" if path else repr(key)
                stack.append((f"{path}.{key}" if path else str(key), sub))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", sub) for i, sub in enumerate(item))
    return None


class Strict(BaseModel):
    """An input shape: unknown fields are a 400 naming them, and so is a NUL."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = nul_path(data) if has_nul(data) else None
        if where is not None:
            raise ValueError(f"'{where[:128]}' holds a NUL character")
        return data
