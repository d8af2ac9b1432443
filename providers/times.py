"""Reading the providers' times. Every provider sends ISO-like strings, some without a zone."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(value: object) -> datetime | None:
    """An ISO time (``Z``, an offset, or none, which is read as UTC) as an aware UTC
    datetime; None when absent or unreadable, so one odd field never fails a sync."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
