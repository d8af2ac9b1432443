"""Reading the fields of KooSearch's JSON leniently: one odd value never fails a sync.

Numbers may come as numbers or digit strings, times as epoch milliseconds in a string, ids
as strings or numbers; what cannot be read is None (or "").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

Record = dict[str, Any]
State = Literal["present", "gone", "soft_deleted"]


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def from_millis(value: object) -> datetime | None:
    """KooSearch times are epoch milliseconds in a string; a number is accepted too."""
    number = value if isinstance(value, float) else as_int(value)
    if number is None:
        return None
    try:
        return datetime.fromtimestamp(number / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def text_id(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def repo_of(record: Record | None) -> str:
    """The knowledge repository a chat was asked against ("" when none)."""
    return text_id((record or {}).get("knowledge_repo_id"))


def state_of(record: Record | None) -> State:
    """A chat's state from its list record; None (the list no longer returns it) is gone."""
    if record is None:
        return "gone"
    return "soft_deleted" if as_int(record.get("is_del")) == 1 else "present"


def count_of(data: Any, snake: str, camel: str) -> int | None:
    """A count under either spelling, as KooSearch's documentation shows both."""
    if not isinstance(data, dict):
        return None
    found = as_int(data.get(snake))
    return found if found is not None else as_int(data.get(camel))
