"""List pages cut in the database, for lists that can grow with the fleet.

A ``limit=10`` page must cost ten rows, not the whole table: the ``marker``
becomes a keyset condition on the list's sort columns, the filters a column
can answer go to SQL, and rows are read in chunks whose views are built
together (so a view's related rows come in one query per chunk). Filters only
a view can answer (``fixed_ips=ip_address=X``, ``admin_state_up=true``) are
matched on each chunk's views, and reading stops as soon as the page is full.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import ColumnElement
from starlette.datastructures import QueryParams

from pcifleet.api.errors import BadRequest
from pcifleet.api.input_check import INT32_MAX, InvalidInput, whole_number
from pcifleet.api.listing import matches_filters, parse_filters, select_fields

CHUNK_ROWS = 200
MAX_SQL_FILTER_VALUE = 255

# a query of any row shape (Select is generic over its columns' types)
AnySelect = Select[*tuple[Any, ...]]
# a mapped attribute (Port.id) or any column expression
ColumnLike = InstrumentedAttribute[Any] | ColumnElement[Any]
# builds the views of a chunk of result rows, in their order
ViewBatch = Callable[[Sequence[Any]], list[dict[str, Any]]]


def page_limit(params: QueryParams) -> int | None:
    """``limit`` as a number, None when absent; 400 naming it when it is not one."""
    text = params.get("limit")
    if not text:
        return None
    try:
        return whole_number(text, "limit", INT32_MAX)
    except InvalidInput as exc:
        raise BadRequest(str(exc)) from None


def where_sql_filters(
    query: AnySelect, params: QueryParams, columns: Mapping[str, ColumnLike]
) -> AnySelect:
    """``query`` narrowed by every filter in ``params`` a column answers exactly
    (repeated keys mean any of the values)."""
    for key, column in columns.items():
        if key not in params:
            continue
        values = params.getlist(key)
        if any(len(v) > MAX_SQL_FILTER_VALUE for v in values):
            raise BadRequest(f"filter {key} is longer than {MAX_SQL_FILTER_VALUE} characters")
        query = query.where(column.in_(values))
    return query


def after_marker(
    session: Session,
    query: AnySelect,
    marker: str,
    value: Any,
    id_column: ColumnLike,
    order: Sequence[ColumnLike],
) -> AnySelect:
    """Rows of ``query`` after the row whose id is ``marker``, in ``order``
    (ascending). The marker is looked up through ``query`` itself, so a row the
    caller may not see is "not found" like one that does not exist."""
    found = (
        None
        if value is None
        else session.execute(
            query.with_only_columns(*order).where(id_column == value).limit(1)
        ).first()
    )
    if found is None:
        raise BadRequest(f"marker {marker[:64]!r} not found")
    return query.where(tuple_(*order) > tuple_(*found))


def db_page(
    session: Session,
    query: AnySelect,
    params: QueryParams,
    views: ViewBatch,
    *,
    id_column: ColumnLike,
    order: Sequence[ColumnLike],
    sql_filters: Mapping[str, ColumnLike] | None = None,
    marker_value: Callable[[str], Any] = str,
) -> list[dict[str, Any]]:
    """One page of a list: the rows of ``query`` in ``order`` after ``marker``,
    at most ``limit`` of them meeting the filters, as views trimmed to ``fields``.

    ``sql_filters`` name the filter keys a column answers; every other filter
    key is matched on the views (a key no view has is ignored, as Neutron
    does). ``marker_value`` turns the marker text into the id column's type,
    None when it cannot be one (then it is not found)."""
    sql_filters = sql_filters or {}
    marker = params.get("marker")
    if marker:  # found among what the caller sees, whatever the filters say
        query = after_marker(session, query, marker, marker_value(marker[:255]), id_column, order)
    query = where_sql_filters(query, params, sql_filters).order_by(*order)
    filters = {k: v for k, v in parse_filters(params).items() if k not in sql_filters}
    limit = page_limit(params)
    if not filters and limit is not None:
        query = query.limit(limit)  # every filter is in SQL: the page is exactly the rows
    page: list[dict[str, Any]] = []
    result = session.execute(query.execution_options(yield_per=CHUNK_ROWS))
    for chunk in result.partitions():
        for view in views(chunk):
            if limit is not None and len(page) >= limit:
                break
            if matches_filters(view, filters):
                page.append(view)
        if limit is not None and len(page) >= limit:
            break
    result.close()
    return [select_fields(v, params) for v in page]
