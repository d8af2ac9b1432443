"""Keyset pagination: no OFFSET, real next/previous links that survive concurrent syncs.
Any sort key works (a column or an annotation: a date, a number, a text; NULLs above
every value), with the primary key as the tie-breaker, so every row appears exactly once
however many share a value."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import F, Q, QuerySet


@dataclass
class Page:
    rows: list[Any]
    next_cursor: str | None
    prev_cursor: str | None


def _encode(row: Any, field: str) -> str:
    value = getattr(row, field)
    tagged: list[Any]
    if isinstance(value, datetime):
        tagged = ["t", value.isoformat()]
    elif isinstance(value, bool | int | str) or value is None:
        tagged = [type(value).__name__, value]
    else:
        raise TypeError(f"cannot page on a {type(value).__name__}")
    raw = json.dumps([*tagged, row.pk])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


_TYPES: dict[str, Any] = {"t": datetime.fromisoformat, "int": int, "bool": bool, "str": str,
                          "NoneType": lambda v: None}


def _decode(cursor: str) -> tuple[Any, int] | None:
    """The (value, pk) of a cursor; None for anything we did not write."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        tag, value, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return _TYPES[tag](value), int(pk)
    except (ValueError, TypeError, KeyError, json.JSONDecodeError):
        return None


def _beyond(field: str, value: Any, pk: int, desc: bool, nullable: bool) -> Q:
    """Rows after (value, pk) in the walking order. NULLs sort above every value, as in
    PostgreSQL's indexes, so the first page of a descending walk is a plain index scan."""
    op = "lt" if desc else "gt"
    if value is None:
        same = Q(**{f"{field}__isnull": True, f"pk__{op}": pk})
        return same | Q(**{f"{field}__isnull": False}) if desc else same
    after = Q(**{f"{field}__{op}": value}) | Q(**{field: value, f"pk__{op}": pk})
    return after | Q(**{f"{field}__isnull": True}) if nullable and not desc else after


def paginate(qs: QuerySet[Any], field: str, descending: bool, size: int,
             after: str | None = None, before: str | None = None,
             nullable: bool = False) -> Page:
    """Rows ordered by (field, pk). `field` may be an annotation; with `nullable`, rows
    whose value is NULL come first when descending and last when ascending."""
    forward = not before
    cursor = _decode(after or before or "") if (after or before) else None
    # Walking backwards is walking forwards in the opposite order, then reversing.
    desc = descending if forward else not descending
    if nullable:
        key = F(field).desc(nulls_first=True) if desc else F(field).asc(nulls_last=True)
        order: list[Any] = [key, "-pk" if desc else "pk"]
    else:
        order = [f"-{field}", "-pk"] if desc else [field, "pk"]
    if cursor is not None:
        qs = qs.filter(_beyond(field, *cursor, desc=desc, nullable=nullable))
    rows = list(qs.order_by(*order)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if not forward:
        rows.reverse()
    has_next = more if forward else bool(cursor)
    has_prev = bool(cursor) if forward else more
    return Page(
        rows=rows,
        next_cursor=_encode(rows[-1], field) if rows and has_next else None,
        prev_cursor=_encode(rows[0], field) if rows and has_prev else None,
    )
