"""Secrets and personal data planted in a fake's histories, one of each kind Lethe's
findings detect, for the tests, the demo and the bench. Every value is made up: test
card and IBAN numbers, a reserved phone number, an example.com address, keys of the
right shape that open nothing."""

from __future__ import annotations

# kind -> (the value, a line a person might send holding it)
PLANTED: dict[str, tuple[str, str]] = {
    "secret": ("sk-proj-" + "Zx9Qw7Lm" * 4,
               "here is the key I used while debugging: {value} can you see why it fails?"),
    "email": ("jane.doe+support@example.co.uk", "You can reach me at {value} any time."),
    "phone": ("+44 20 7946 0958", "Call me back on {value} after five."),
    "card": ("4242 4242 4242 4242", "The card I tried was {value}, expiry 12/29."),
    "iban": ("GB82 WEST 1234 5698 7654 32", "Please refund it to {value} instead."),
    "custom": ("EMP-204917", "My employee number is {value} if HR asks."),
}
# The team pattern that finds the "custom" value above.
CUSTOM_PATTERN = ("Employee id", r"\bEMP-\d{6}\b")


def line(kind: str) -> str:
    value, template = PLANTED[kind]
    return template.format(value=value)
