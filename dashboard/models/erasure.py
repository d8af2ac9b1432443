"""Erasure jobs: a frozen list of items, one row each, worked through by Celery workers.

Job and item state live here, never in Celery: a task message only says "work on job N".
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Count, Q

import providers

from ..lib import labels
from .connections import Connection
from .jobstate import Event, IllegalTransition, Status, advance
from .mirror import Conversation, Message


class ErasureJobQuerySet(models.QuerySet["ErasureJob"]):
    def visible_to(self, user: Any) -> ErasureJobQuerySet:
        """Confirmed jobs on connections the person can see, with the rows every page
        names (drafts are only their requester's business)."""
        mine = Q(connection__in=Connection.objects.visible_to(user))
        if getattr(user, "is_authenticated", False):
            # A removed connection's receipts stay with the people named on them.
            named = Q(requested_by=user) | Q(approved_by=user)
            mine |= Q(connection__isnull=True) & (Q() if user.is_superuser else named)
        return self.filter(mine).exclude(status=Status.DRAFT).select_related(
            "connection", "requested_by", "approved_by", "cancelled_by")

    def transition(self, pk: int, event: Event, **fields: Any) -> ErasureJob:
        """The one way a job changes state: lock its row, apply ``event`` through the state
        table (IllegalTransition when it does not apply), set ``fields`` and save exactly
        those. Runs in the caller's transaction, or in its own."""
        with transaction.atomic():
            job = self.select_for_update().get(pk=pk)
            job.status = advance(job.status, event)
            for name, value in fields.items():
                setattr(job, name, value)
            job.save(update_fields=["status", *fields])
        return job

    def transition_if_allowed(self, pk: int, event: Event, **fields: Any
                              ) -> ErasureJob | None:
        """``transition``, or None when the job has moved on to a state where ``event``
        does not apply (another worker or a person got there first)."""
        try:
            return self.transition(pk, event, **fields)
        except IllegalTransition:
            return None


class ErasureJob(models.Model):
    Status = Status
    LABELS = {Status(value): text for value, text in labels.JOB_STATUS.items()}

    request = models.UUIDField(default=uuid.uuid4, db_index=True, editable=False)
    # Null once the connection was removed; the receipt then reads the snapshot below.
    connection = models.ForeignKey(Connection, on_delete=models.SET_NULL, null=True,
                                   related_name="jobs")
    connection_label = models.CharField(max_length=120, blank=True)
    provider = models.CharField(max_length=40, blank=True)
    key_hint = models.CharField(max_length=12, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="erasure_jobs"
    )
    status = models.CharField(
        max_length=20, choices=[(s.value, label) for s, label in LABELS.items()],
        default=Status.DRAFT,
    )
    dry_run = models.BooleanField(default=False)
    include_pinned = models.BooleanField(default=False)
    # How the selection was made (filter values, "select all"), for the job page and receipt.
    scope = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="approved_jobs",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    # End of the cancel window: nothing is sent before this.
    not_before = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="cancelled_jobs",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A worker touches this while it works the job; a stale one means nobody is on it.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Nothing is tried before then: the provider asked us to wait, or could not be reached,
    # or a read-back failed; the sweeper brings the job back once it has passed.
    throttled_until = models.DateTimeField(null=True, blank=True)
    # When workers were last asked for (a message lost on the way is asked for again).
    queued_at = models.DateTimeField(null=True, blank=True)
    # Read-backs to verify acknowledged items that failed in a row.
    verify_failures = models.PositiveSmallIntegerField(default=0)
    paused_for_auth = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)
    # Why an approver said no (shown to the requester and in the receipt).
    rejected_reason = models.TextField(blank=True)
    exported_at = models.DateTimeField(null=True, blank=True)
    export_sha256 = models.CharField(max_length=64, blank=True)

    objects = ErasureJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        kind = "Dry run" if self.dry_run else "Erasure"
        return f"{kind} job {self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.CANCELLED}

    @property
    def provider_label(self) -> str:
        cls = providers.REGISTRY.get(self.provider)
        return cls.label if cls else self.provider

    def live_connection(self) -> Connection:
        """The connection this job works on; DoesNotExist once it was removed (removal waits
        for jobs that may be sending, and the worker settles what such a job had left)."""
        if self.connection is None:
            raise Connection.DoesNotExist(f"The connection of job {self.pk} was removed.")
        return self.connection

    def counts(self) -> dict[str, int]:
        """Items per state, every state present (zero when none)."""
        rows = self.items.values("state").annotate(n=Count("id")).order_by()
        found = {row["state"]: row["n"] for row in rows}
        return {state: found.get(state, 0) for state in ErasureItem.State.values}


class ErasureLease(models.Model):
    """A worker on a job: made when it joins, beaten while it works, deleted when it leaves.
    One that stopped beating was a worker that died. The leases say how many workers a job
    has (never more than LETHE_ERASE_WORKERS) and whether anybody is on it at all."""

    job = models.ForeignKey(ErasureJob, on_delete=models.CASCADE, related_name="leases")
    beat_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["job", "beat_at"])]

    def __str__(self) -> str:
        return f"worker on job {self.job_id}"


class ErasureItem(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", labels.ITEM_STATE["pending"]
        IN_FLIGHT = "in_flight", labels.ITEM_STATE["in_flight"]
        ERASED = "erased", labels.ITEM_STATE["erased"]
        VERIFIED = "verified", labels.ITEM_STATE["verified"]
        ALREADY_GONE = "already_gone", labels.ITEM_STATE["already_gone"]
        SOFT_DELETED = "soft_deleted", labels.ITEM_STATE["soft_deleted"]
        STILL_THERE = "still_there", labels.ITEM_STATE["still_there"]
        FAILED = "failed", labels.ITEM_STATE["failed"]
        UNKNOWN = "unknown", labels.ITEM_STATE["unknown"]
        SKIPPED = "skipped", labels.ITEM_STATE["skipped"]
        WOULD_ERASE = "would_erase", labels.ITEM_STATE["would_erase"]

    # What "failed" means to people: retried or skipped together from the job page.
    FAILING = (State.FAILED, State.STILL_THERE)
    # States a worker still has business with.
    OPEN = (State.PENDING, State.IN_FLIGHT, State.UNKNOWN)
    # The provider acted on it (or it was gone already): Lethe keeps none of its text.
    PURGED = (State.ERASED, State.VERIFIED, State.ALREADY_GONE, State.SOFT_DELETED,
              State.STILL_THERE)

    class SentIf(models.TextChoices):
        """Pinned messages are the one choice left open after the freeze: an item may be
        meant only for one answer to "include pinned messages?"."""

        ALWAYS = "always", "Always"
        PINNED_KEPT = "pinned_kept", "Only if pinned messages are kept"
        PINNED_INCLUDED = "pinned_included", "Only if pinned messages are included"

    class Kind(models.TextChoices):
        CONVERSATION = "conversation", labels.ITEM_KIND["conversation"]
        MESSAGE = "message", labels.ITEM_KIND["message"]

    # The (job, state) index below serves every lookup by job: no second index on job.
    # Unchecked by the database, like the two pointers below: a constraint looks up (and
    # row-locks) the job once per item when a freeze commits, 0.7 s of a 200,000-item
    # freeze. Jobs are only ever deleted through Django, whose CASCADE deletes their items
    # first; tests/erasure/test_pointers.py holds it.
    job = models.ForeignKey(ErasureJob, on_delete=models.CASCADE, related_name="items",
                            db_index=False, db_constraint=False)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    # Items outlive the mirror rows they point at, so these two are pointers, not database
    # constraints: a constraint checks (and row-locks) each referenced row when a freeze
    # commits, a second per 200,000 items. Every path that deletes mirror rows nulls them
    # first (Django's SET_NULL, `removal.remove`); tests/erasure/test_pointers.py holds it.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, related_name="erasure_items",
        db_constraint=False, db_index=False,  # (conversation, job) below serves both
    )
    message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="erasure_items",
        db_constraint=False,
    )
    # Provider ids are copied in so the job never depends on a later sync of the mirror.
    provider_id = models.CharField(max_length=200)
    conversation_provider_id = models.CharField(max_length=200)
    character_provider_id = models.CharField(max_length=200, blank=True)
    # Unique by a constraint, not unique=True: that adds a second (LIKE) index on PostgreSQL.
    idempotency_key = models.CharField(max_length=300)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    sent_if = models.CharField(max_length=16, choices=SentIf.choices, default=SentIf.ALWAYS)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    detail = models.TextField(blank=True)
    response = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        # (conversation, job): what holds a conversation (freezes, confirming, purges), by
        # conversation alone or within one job, from one index.
        indexes = [models.Index(fields=["job", "state"]),
                   models.Index(fields=["conversation", "job"])]
        constraints = [models.UniqueConstraint(fields=["idempotency_key"],
                                               name="erasureitem_idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.provider_id} ({self.state})"
