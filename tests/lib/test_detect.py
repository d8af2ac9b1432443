"""The detectors find each kind of secret and personal data where it is, say so with a
masked preview that never holds the value, and leave ordinary chat alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard.lib.detect import Pattern, Scanner, mask

SCANNER = Scanner.standard("GB")

PLANTED = {
    "secret": [
        ("GitHub Token", "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"),
        ("AWS Access Key", "AKIAIOSFODNN7EXAMPLE"),
        ("OpenAI key", "sk-proj-" + "Zx9" * 12),
        ("Anthropic key", "sk-ant-api03-" + "Qw7_" * 8),
        ("Slack Token", "xoxb-123456789012-123456789012-" + "abcdefghij" * 2 + "abcd"),
        ("Stripe Access Key", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"),
        ("JSON Web Token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
                           "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ],
    "email": [("e-mail address", "jane.doe+support@example.co.uk")],
    "phone": [("phone number", "+44 20 7946 0958"), ("phone number", "020 7946 0958")],
    "card": [("payment card number", "4242 4242 4242 4242"),
             ("payment card number", "5555-5555-5555-4444")],
    "iban": [("IBAN", "GB82 WEST 1234 5698 7654 32"), ("IBAN", "DE89370400440532013000")],
}


@pytest.mark.parametrize(("kind", "detector", "value"),
                         [(k, d, v) for k, found in PLANTED.items() for d, v in found])
def test_each_kind_is_found_where_it_is_with_a_preview_that_hides_it(kind, detector, value):
    text = f"Hi! here it is: {value} , thanks"
    [hit] = SCANNER.scan(text)
    assert (hit.kind, hit.detector) == (kind, detector)
    assert text[hit.start:hit.end] == value
    assert value not in hit.preview and len(hit.preview) < len(value) / 2 + 6


def test_passwords_in_urls_and_private_keys():
    [auth] = SCANNER.scan("db at postgres://admin:correct-horse@db.internal:5432/app")
    assert auth.detector == "Basic Auth" and auth.preview == "c…se"
    block = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34\n-----END RSA PRIVATE KEY-----"
    text = f"my key:\n{block}\nthanks"
    [key] = SCANNER.scan(text)
    assert key.kind == "secret" and key.preview == "-----BEGIN RSA PRIVATE KEY-----"
    assert text[key.start:key.end] == block


@pytest.mark.parametrize("text", [
    "Hello! Could you tell me about the weather tomorrow morning?",
    "My order 12345 shipped on 2024-03-02 and costs 19.99",
    "The session id is 0d3343b8f428817a0f5fa1a48c213116",  # an id, not a credential
    "4242 4242 4242 4241 is not a card (Luhn)",
    "Call 123",
    "",
])
def test_ordinary_chat_holds_no_finding(text):
    assert SCANNER.scan(text) == []


def test_overlaps_go_to_the_more_specific_kind():
    # A card number is also a string of digits a phone matcher could take.
    [hit] = SCANNER.scan("pay with 4111 1111 1111 1111 today")
    assert hit.kind == "card"


def test_a_team_pattern_is_found_by_its_name():
    scanner = Scanner.standard("GB", extra=[Pattern("Employee id", r"\bEMP-\d{6}\b")])
    [hit] = scanner.scan("ask EMP-004211 about it")
    assert (hit.kind, hit.detector, hit.preview) == ("custom", "Employee id", "E…11")


@given(st.text(min_size=8, max_size=80))
def test_a_preview_never_holds_half_of_what_it_masks(value):
    preview = mask(value)
    assert len(preview.replace("…", "")) <= len(value) / 2


@given(st.text(max_size=300))
def test_findings_are_inside_the_text_in_order_and_never_overlap(text):
    found = SCANNER.scan(text)
    for hit in found:
        assert 0 <= hit.start < hit.end <= len(text)
    for before, after in zip(found, found[1:], strict=False):
        assert before.end <= after.start


PIECES = [value for found in PLANTED.values() for _, value in found] + [
    "Hello there", "at 7:30 on day 12", "4242", "4242 4242", "@", "EMP-004211", "\n",
    "postgres://admin:correct-horse@db.internal:5432/app", " ", "GB82", "+44 20", "7946 0958"]


@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=6).map("".join), max_size=12))
def test_a_batch_finds_exactly_what_each_message_alone_would(texts):
    # Pieces split across neighbours (a number's end, the next one's start) must not count.
    scanner = Scanner.standard("GB", extra=[Pattern("Employee id", r"\bEMP-\d{6}\b")])
    alone = [(i, found) for i, text in enumerate(texts) if (found := scanner.scan(text))]
    assert list(scanner.scan_many(texts)) == alone


def test_a_pattern_anchored_to_the_text_is_run_on_every_message():
    scanner = Scanner.standard("GB", extra=[Pattern("Ticket", r"^T-\d{4}$")])
    assert [i for i, _ in scanner.scan_many(["hi", "T-1234", "x T-1234"])] == [1]
