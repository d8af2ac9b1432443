"""Frozen records that providers hand to the dashboard. Times are aware datetimes (UTC)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ConversationState = Literal["active", "archived", "soft_deleted"]
TargetKind = Literal["conversation", "message"]
OutcomeStatus = Literal["erased", "already_gone", "failed", "unknown"]


@dataclass(frozen=True)
class Account:
    """Who the key belongs to, as the provider tells it."""

    id: str
    name: str


@dataclass(frozen=True)
class Character:
    provider_id: str
    name: str
    description: str = ""
    last_interaction: datetime | None = None


@dataclass(frozen=True)
class Conversation:
    provider_id: str
    character_id: str
    title: str = ""
    started_at: datetime | None = None
    last_message_at: datetime | None = None
    state: ConversationState = "active"
    # Provider-specific facts the UI shows beside the row, e.g. {"in_memory": True}.
    flags: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    provider_id: str
    conversation_id: str
    position: int  # 0 = oldest; stable across syncs for the same history
    author: str
    is_human: bool
    text: str
    created_at: datetime | None = None
    pinned: bool = False


@dataclass(frozen=True)
class Target:
    """One thing to erase. `conversation_id` and `character_id` locate it at the provider."""

    kind: TargetKind
    provider_id: str
    conversation_id: str
    character_id: str = ""


@dataclass(frozen=True)
class Outcome:
    target: Target
    status: OutcomeStatus
    detail: str = ""
    # What the provider answered, without secrets or message text, for the receipt.
    response: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Presence:
    """What a read-back found: present, gone, or soft-deleted at the provider."""

    target: Target
    state: Literal["present", "gone", "soft_deleted"]


@dataclass(frozen=True)
class FieldSpec:
    """A connection field the provider needs, for forms and the `connect` command."""

    name: str
    label: str
    secret: bool = False
    required: bool = True
    default: str = ""
    help: str = ""


@dataclass(frozen=True)
class Capabilities:
    """What the provider can and cannot erase; the UI shows it beside every delete button."""

    erase_kinds: tuple[TargetKind, ...]
    max_batch: int
    soft_delete: bool
    verify: str  # how erasure is verified, in words
    # Sentences a person understands without the API docs, shown as they are: each `can`
    # starts "Lethe can", each `cannot` "Lethe cannot" (no double negatives, no API names).
    can: tuple[str, ...]
    cannot: tuple[str, ...]
    requests_per_second: float = 5.0  # a fixed budget's rate; an adaptive one starts here
    burst: int = 5
    # The provider's documented limit (requests/s), which adaptive pacing never exceeds.
    max_requests_per_second: float | None = None
