"""The mirror: what Lethe last read from a provider, keyed by (connection, provider id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from ..lib import labels
from .connections import Connection


class MirrorState(models.TextChoices):
    PRESENT = "present", labels.MIRROR_STATE["present"]
    GONE = "gone", labels.MIRROR_STATE["gone"]
    ERASED = "erased", labels.MIRROR_STATE["erased"]


class ProviderState(models.TextChoices):
    ACTIVE = "active", labels.PROVIDER_STATE["active"]
    ARCHIVED = "archived", labels.PROVIDER_STATE["archived"]
    SOFT_DELETED = "soft_deleted", labels.PROVIDER_STATE["soft_deleted"]


class Character(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="characters")
    provider_id = models.CharField(max_length=200)
    name = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    last_interaction = models.DateTimeField(null=True, blank=True)
    mirror_state = models.CharField(
        max_length=10, choices=MirrorState.choices, default=MirrorState.PRESENT
    )

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "provider_id"], name="character_key")
        ]

    def __str__(self) -> str:
        return self.name


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def visible_to(self, user: Any) -> ConversationQuerySet:
        """Conversations of the connections a person can see."""
        return self.filter(connection__in=Connection.objects.visible_to(user))


class Conversation(models.Model):
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="conversations"
    )
    character = models.ForeignKey(
        Character, on_delete=models.CASCADE, related_name="conversations", null=True
    )
    provider_id = models.CharField(max_length=200)
    title = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    message_count = models.PositiveIntegerField(default=0)
    provider_state = models.CharField(
        max_length=15, choices=ProviderState.choices, default=ProviderState.ACTIVE
    )
    mirror_state = models.CharField(
        max_length=10, choices=MirrorState.choices, default=MirrorState.PRESENT
    )
    flags = models.JSONField(default=dict, blank=True)
    # The keep-list: never erased, whatever selection it falls into.
    protected = models.BooleanField(default=False)
    erased_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-last_message_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "provider_id"], name="conversation_key")
        ]
        indexes = [
            models.Index(fields=["connection", "last_message_at", "id"]),
            # The list sorted by title: without it every page sorts all rows by collation.
            models.Index(Lower("title"), "id", name="conversation_title_sort"),
        ]

    def __str__(self) -> str:
        # Not the title: str() ends up in places that outlive an erasure (the admin's log).
        return f"conversation {self.provider_id}"

    def audit_label(self) -> str:
        """How the audit trail names it: never by its title, often the chat's first line."""
        character = self.character.name if self.character else "no character"
        return f"conversation {self.provider_id} of {character} on {self.connection.label}"

    @property
    def in_memory(self) -> bool:
        return bool(self.flags.get("in_memory"))


class Message(models.Model):
    # No index of its own: (conversation, position) and the (conversation, provider_id) key
    # below both begin with it, and a sync writes every message into each index there is.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    provider_id = models.CharField(max_length=200)
    position = models.PositiveIntegerField()
    author = models.CharField(max_length=200)
    is_human = models.BooleanField(default=False)
    text = models.TextField()
    created_at = models.DateTimeField(null=True, blank=True)
    pinned = models.BooleanField(default=False)
    mirror_state = models.CharField(
        max_length=10, choices=MirrorState.choices, default=MirrorState.PRESENT
    )
    # Set when the provider erased it; its text and author are gone from Lethe then.
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["conversation", "position"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "provider_id"], name="message_key")
        ]
        indexes = [
            models.Index(fields=["conversation", "position"]),
            # Pinned messages are few; freezing asks "does this conversation hold one?" of
            # every conversation selected, which without this reads every message.
            models.Index(fields=["conversation"], condition=models.Q(pinned=True),
                         name="message_pinned"),
        ]

    def __str__(self) -> str:
        return f"{self.author} #{self.position}"


class SyncRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", labels.SYNC_STATUS["queued"]
        RUNNING = "running", labels.SYNC_STATUS["running"]
        OK = "ok", labels.SYNC_STATUS["ok"]
        FAILED = "failed", labels.SYNC_STATUS["failed"]

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="sync_runs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    full = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Beaten from outside the sync's transaction while it works: a stale one was a worker
    # that died, and the run is failed so that a new one can start.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    characters = models.PositiveIntegerField(default=0)
    conversations = models.PositiveIntegerField(default=0)
    messages = models.PositiveIntegerField(default=0)
    gone = models.PositiveIntegerField(default=0)
    # Progress, written by the heartbeat while the run works (its own writes stay invisible
    # until the end): conversations whose messages this run reads, how many are read so
    # far, requests sent, 429s received, and requests per second over the last beat.
    to_read = models.PositiveIntegerField(default=0)
    read = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    rate_limited = models.PositiveIntegerField(default=0)
    rate = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    # What the provider told us along the way, e.g. "this account has no legacy histories".
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Sync {self.pk} of {self.connection_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.OK, self.Status.FAILED}

    @property
    def eta(self) -> datetime | None:
        """When a running sync should be done reading, at the pace it has read so far; None
        before a conversation has been read (no pace to go by yet)."""
        if (self.status != self.Status.RUNNING or not self.read or self.read >= self.to_read
                or not self.started_at or not self.heartbeat_at):
            return None
        per_conversation = (self.heartbeat_at - self.started_at) / self.read
        return self.heartbeat_at + per_conversation * (self.to_read - self.read)
