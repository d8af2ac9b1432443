"""Text a database cannot hold, replaced on the way in: PostgreSQL refuses NUL in text and
UTF-8 refuses lone surrogates (JSON can carry both, as "\\u0000" and "\\ud800"). One strange
value from a provider must never block a sync, so the reader hands the writer records with
such characters replaced by U+FFFD, and counts how many values it changed."""

from __future__ import annotations

import dataclasses
import re
from typing import TypeVar

from providers import records

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# The text fields of each record a sync stores.
_FIELDS: dict[type, tuple[str, ...]] = {
    records.Account: ("id", "name"),
    records.Character: ("provider_id", "name", "description"),
    records.Conversation: ("provider_id", "character_id", "title"),
    records.Message: ("provider_id", "conversation_id", "author", "text"),
}
R = TypeVar("R")


def _storable(value: str) -> bool:
    # A sync asks this of every field of every message it reads. ASCII text (which Python
    # knows without reading it) can hold no surrogate, so only NUL is looked for there.
    if value.isascii():
        return "\x00" not in value
    return _UNSTORABLE.search(value) is None


class Cleaner:
    def __init__(self) -> None:
        self.changed = 0

    def text(self, value: str) -> str:
        if _storable(value):
            return value
        self.changed += 1
        return _UNSTORABLE.sub(REPLACEMENT, value)

    def record(self, record: R) -> R:
        """The record, or a copy with its text fields made storable."""
        changes = {}
        for name in _FIELDS[type(record)]:
            value = getattr(record, name)
            if not _storable(value):
                changes[name] = self.text(value)
        return dataclasses.replace(record, **changes) if changes else record  # type: ignore[type-var]

    def note(self) -> str:
        if not self.changed:
            return ""
        return (f"{self.changed} value{'s' * (self.changed != 1)} from the provider held "
                "characters a database cannot store (NUL or broken Unicode); they were "
                "replaced with \ufffd.")
