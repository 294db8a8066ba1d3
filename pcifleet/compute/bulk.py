"""Neutron's bulk create: ``POST /networks`` with ``{"networks": [...]}`` (and
subnets, ports) makes every item or none.

A bulk body's items go one by one through the same create as a single body, in
one transaction the caller commits only after the last: the checks, the policy
and the IP allocation are the single create's own, and a later item sees the
rows of the earlier ones (flushed), so two items of one request clash exactly
as two requests would. The first refusal names its item's index; the caller
then does not commit, and nothing of the request is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import model_validator

from pcifleet.compute.errors import ApiError
from pcifleet.compute.schemas import Strict

# Neutron has no count limit, only its body size limit (about 8,000 tiny items);
# a smaller bound keeps one request's transaction, and its locks, short.
MAX_BULK = 1000

Spec = TypeVar("Spec")
Made = TypeVar("Made")


class CreateRequest(Strict, Generic[Spec]):
    """A create body: ``{SINGLE: {...}}`` or ``{PLURAL: [{...}, ...]}``, exactly one.

    A subclass declares the two fields (``SINGLE`` optional, ``PLURAL`` a list of
    1..MAX_BULK) and names them in the class variables. As Neutron does, an item
    of the list may also come wrapped as ``{SINGLE: {...}}``.
    """

    SINGLE: ClassVar[str]
    PLURAL: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _unwrap_items(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get(cls.PLURAL), list):
            return data
        items = [
            item[cls.SINGLE] if isinstance(item, dict) and list(item) == [cls.SINGLE] else item
            for item in data[cls.PLURAL]
        ]
        return {**data, cls.PLURAL: items}

    @model_validator(mode="after")
    def _one_form(self) -> CreateRequest[Spec]:
        given = [name for name in (self.SINGLE, self.PLURAL) if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give either '{self.SINGLE}' (one object) or '{self.PLURAL}' "
                "(a list of objects for a bulk create), not both or neither"
            )
        return self

    @property
    def is_bulk(self) -> bool:
        return getattr(self, self.PLURAL) is not None

    def specs(self) -> list[Spec]:
        """The items to create: the list of a bulk body, or the one object."""
        items: list[Spec] | None = getattr(self, self.PLURAL)
        return items if items is not None else [getattr(self, self.SINGLE)]


def create_all(body: CreateRequest[Spec], create: Callable[[Spec], Made]) -> list[Made]:
    """``create`` for every spec of ``body`` in order. In a bulk body an error
    names its item (``networks[3]: ...``) and keeps its status and kind. Nothing
    is committed here: the caller commits after the last item, or not at all."""
    made = []
    for i, spec in enumerate(body.specs()):
        try:
            made.append(create(spec))
        except ApiError as exc:
            if body.is_bulk:
                exc.message = f"{body.PLURAL}[{i}]: {exc.message}"
                exc.args = (exc.message,)
            raise
    return made
