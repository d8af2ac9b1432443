"""Keyset pagination: no OFFSET, real next/previous links that survive concurrent syncs."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet


@dataclass
class Page:
    rows: list[Any]
    next_cursor: str | None
    prev_cursor: str | None


def _encode(row: Any, field: str) -> str:
    value = getattr(row, field)
    raw = json.dumps([value.isoformat() if value else None, row.pk])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime | None, int] | None:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return (datetime.fromisoformat(value) if value else None), int(pk)
    except (ValueError, TypeError, json.JSONDecodeError):
        return None


def paginate(qs: QuerySet[Any], field: str, descending: bool, size: int,
             after: str | None = None, before: str | None = None) -> Page:
    """Rows ordered by (field, pk); `field` must be non-null on every row."""
    forward = not before
    cursor = _decode(after or before or "") if (after or before) else None
    # Walking backwards is walking forwards in the opposite order, then reversing.
    desc = descending if forward else not descending
    order = [f"-{field}", "-pk"] if desc else [field, "pk"]
    if cursor is not None:
        value, pk = cursor
        op = "lt" if desc else "gt"
        qs = qs.filter(Q(**{f"{field}__{op}": value}) | Q(**{field: value, f"pk__{op}": pk}))
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
