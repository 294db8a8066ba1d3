"""Shared pieces of the input schemas: every input model forbids unknown fields."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(max_length=255)]
Description = Annotated[str, Field(max_length=1024)]
Id = Annotated[str, Field(min_length=1, max_length=255)]


class Strict(BaseModel):
    """An input shape: unknown fields are a 400 naming them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
