"""Append-only audit events: who did what to which object. Never a secret or message text."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class AppendOnly(Exception):
    pass


class Tick(models.Model):
    """When a periodic task last ran: with more than one beat running (by mistake, or
    during a hand-over), each tick is taken by one of them only."""

    name = models.CharField(max_length=40, unique=True)
    last_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        SIGN_IN = "sign_in", "Signed in"
        SIGN_IN_FAILED = "sign_in_failed", "Sign-in refused"
        CONNECTION_ADDED = "connection_added", "Connection added"
        CONNECTION_CHANGED = "connection_changed", "Connection changed"
        CONNECTION_KEY_REPLACED = "connection_key_replaced", "Connection key replaced"
        CONNECTION_SHARED = "connection_shared", "Connection sharing changed"
        CONNECTION_REMOVED = "connection_removed", "Connection removed"
        SYNC_REQUESTED = "sync_requested", "Sync requested"
        ERASURE_REQUESTED = "erasure_requested", "Erasure requested"
        ERASURE_APPROVED = "erasure_approved", "Erasure approved"
        ERASURE_REJECTED = "erasure_rejected", "Erasure rejected"
        ERASURE_CANCELLED = "erasure_cancelled", "Erasure cancelled"
        ERASURE_FINISHED = "erasure_finished", "Erasure finished"
        ERASURE_CHANGED = "erasure_changed", "Erasure paused, resumed, retried or skipped"
        EXPORT_DOWNLOADED = "export_downloaded", "Export downloaded"
        KEEP_LIST_CHANGED = "keep_list_changed", "Keep-list changed"
        POLICY_CHANGED = "policy_changed", "Retention policy added or changed"
        POLICY_REMOVED = "policy_removed", "Retention policy removed"
        POLICY_RUN = "policy_run", "Retention policy run requested"
        ADMIN_CHANGE = "admin_change", "Changed in the Django admin"
        FINDING_REVEALED = "finding_revealed", "Finding shown unmasked"
        FINDING_DISMISSED = "finding_dismissed", "Finding dismissed or reopened"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                              blank=True, related_name="+")
    # Kept as text too, so the trail survives the user's removal.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=30, choices=Action.choices, db_index=True)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_label = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnly("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnly("Audit events cannot be deleted.")
