"""What the reader hands the writer is storable: NUL and lone surrogates (which JSON can
carry) become U+FFFD, in every text field, and each value changed is counted."""

from __future__ import annotations

import pytest

from dashboard.mirror.storable import REPLACEMENT, Cleaner
from providers.records import Conversation, Message


def message(text: str, author: str = "You") -> Message:
    return Message(provider_id="m1", conversation_id="c1", position=0, author=author,
                   is_human=True, text=text)


@pytest.mark.parametrize("text", ["plain ASCII", "caf\u00e9 \u2615 \U0001f600", ""])
def test_storable_text_is_handed_on_as_it_is(text: str) -> None:
    cleaner = Cleaner()
    kept = message(text)
    assert cleaner.record(kept) is kept
    assert cleaner.changed == 0 and cleaner.note() == ""


@pytest.mark.parametrize("text, stored", [
    ("odd \x00 text", f"odd {REPLACEMENT} text"),  # ASCII: only NUL can be wrong there
    ("odd \ud800 text \x00", f"odd {REPLACEMENT} text {REPLACEMENT}"),
    ("caf\u00e9 \udfff", f"caf\u00e9 {REPLACEMENT}"),
])
def test_unstorable_characters_are_replaced_and_counted(text: str, stored: str) -> None:
    cleaner = Cleaner()
    cleaned = cleaner.record(message(text, author="A\x00"))
    assert (cleaned.text, cleaned.author) == (stored, f"A{REPLACEMENT}")
    assert cleaner.changed == 2
    assert "2 values" in cleaner.note()


def test_every_text_field_of_a_record_is_cleaned() -> None:
    cleaner = Cleaner()
    cleaned = cleaner.record(Conversation(provider_id="c\x00", character_id="k",
                                          title="t\ud800"))
    assert (cleaned.provider_id, cleaned.title) == (f"c{REPLACEMENT}", f"t{REPLACEMENT}")
    assert cleaner.changed == 2
