"""Findings: where the detectors (`lib.detect`) saw a secret or personal data in a mirrored
message, and the patterns a team adds to them.

A finding never holds the matched value: only its message, the detector, the position and
a masked preview. It lives as long as its message's text does: rewritten when the text
changes in a sync, dropped when the message is erased (`mirror.purge`).
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from ..lib.detect import KINDS
from .connections import Connection
from .mirror import Conversation, Message

PATTERN_LENGTH = 300


class Kind(models.TextChoices):
    SECRET = "secret", "Secret or credential"
    CARD = "card", "Payment card number"
    IBAN = "iban", "IBAN"
    CUSTOM = "custom", "Team pattern"
    EMAIL = "email", "E-mail address"
    PHONE = "phone", "Phone number"


assert set(Kind.values) == set(KINDS), "every detector kind has a label"  # nosec B101


class FindingQuerySet(models.QuerySet["Finding"]):
    def visible_to(self, user: Any) -> FindingQuerySet:
        """Findings in the connections a person can see."""
        return self.filter(connection__in=Connection.objects.visible_to(user))


class Finding(models.Model):
    # Connection and conversation repeat the message's, so that counts and filters by them
    # need no join through the (large) message table.
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE,
                                     related_name="findings")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="findings")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    detector = models.CharField(max_length=100)
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    # Masked (`sk-…9f2c`): never the value itself.
    preview = models.CharField(max_length=80)
    found_at = models.DateTimeField(auto_now_add=True)
    # Someone looked and said it is nothing to erase (a test card number, say): no longer
    # open, until the message's text changes. Kept through `manage.py find`.
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dismissed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="+")

    objects = FindingQuerySet.as_manager()

    class Meta:
        ordering = ["-found_at", "-id"]
        indexes = [models.Index(fields=["connection", "kind"]),
                   models.Index(fields=["found_at", "id"])]

    def __str__(self) -> str:
        return f"{self.detector} in message {self.message_id}"


def check_pattern(pattern: str) -> None:
    """A team's regular expression: it must compile and match something, never nothing."""
    if len(pattern) > PATTERN_LENGTH:
        raise ValidationError(f"At most {PATTERN_LENGTH} characters.")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValidationError(f"Not a valid regular expression: {exc}.") from exc
    if compiled.fullmatch("") is not None:
        raise ValidationError("This pattern matches empty text; it would find everything.")


class FindingPattern(models.Model):
    """A team's own detector (e.g. employee ids), added in the admin."""

    name = models.CharField(max_length=80, unique=True,
                            help_text="What a finding of it is called, e.g. “Employee id”.")
    pattern = models.CharField(
        max_length=PATTERN_LENGTH, validators=[check_pattern],
        help_text="A Python regular expression; the whole match is the finding.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class FindingNotice(models.Model):
    """The outbox of "new findings" notifications: written in the sync's transaction with
    the counts by kind (never a value, never text), sent and marked sent by a worker, and
    sent again later when a channel failed (`erasure.finding_alerts`)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    counts = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    email_done = models.BooleanField(default=False)
    webhook_done = models.BooleanField(default=False)
    last_error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"new findings on connection {self.connection_id}"
