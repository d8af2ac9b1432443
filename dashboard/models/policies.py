"""Retention policies (a scope plus an age, run on a schedule), their runs, and the record of
which job notifications went out.

A policy acts as its owner: every run checks that the owner still holds the operator role
and still sees what the policy names, and the jobs it makes are the owner's jobs, so they
go through the same keep-list, pinned, approval and cancel-window rules as hand-made ones.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from ..lib import labels
from .connections import Connection
from .erasure import ErasureJob
from .findings import Kind
from .mirror import Character

MAX_AGE_DAYS = 36500  # a hundred years
MAX_INTERVAL_HOURS = 8760  # a year


class RetentionPolicyQuerySet(models.QuerySet["RetentionPolicy"]):
    def visible_to(self, user: Any) -> RetentionPolicyQuerySet:
        """A person sees the policies they own and those naming a connection they can see.
        Policies over "all" or a provider cover the owner's connections, so only the owner
        sees them."""
        visible = Connection.objects.visible_to(user)
        return self.filter(
            Q(owner_id=getattr(user, "pk", None))
            | Q(connection__in=visible) | Q(character__connection__in=visible)
        ).distinct()


class RetentionPolicy(models.Model):
    class Scope(models.TextChoices):
        ALL = "all", "Every connection the owner can access"
        PROVIDER = "provider", "One provider"
        CONNECTION = "connection", "One connection"
        CHARACTER = "character", "One character"

    class Mode(models.TextChoices):
        APPROVE = "approve", "Hold each job for an approver"
        AUTOMATIC = "automatic", "Run automatically (threshold and cancel window still apply)"

    name = models.CharField(max_length=120)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                              related_name="retention_policies")
    scope = models.CharField(max_length=12, choices=Scope.choices, default=Scope.CONNECTION)
    provider = models.CharField(max_length=40, blank=True)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="retention_policies")
    character = models.ForeignKey(Character, on_delete=models.CASCADE, null=True, blank=True,
                                  related_name="retention_policies")
    older_than_days = models.PositiveIntegerField(
        default=90, validators=[MinValueValidator(1), MaxValueValidator(MAX_AGE_DAYS)])
    # One phrase a line. Only conversations matching one of `keywords` go (when given);
    # conversations matching one of `keep_keywords` never do.
    keywords = models.TextField(blank=True)
    keep_keywords = models.TextField(blank=True)
    # Set: only the messages holding a finding of this kind go (the whole conversation
    # where the provider erases only whole ones), not every old conversation in scope.
    finding_kind = models.CharField(max_length=10, choices=Kind.choices, blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.APPROVE)
    every_hours = models.PositiveIntegerField(
        default=24, validators=[MinValueValidator(1), MaxValueValidator(MAX_INTERVAL_HOURS)])
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = RetentionPolicyQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "retention policies"
        # Whatever writes a policy (a form, the admin, a script), its numbers stay sane: a
        # huge age or interval would break every page and beat run that computes with it.
        constraints = [
            models.CheckConstraint(
                condition=Q(older_than_days__gte=1, older_than_days__lte=MAX_AGE_DAYS),
                name="policy_age_bounds"),
            models.CheckConstraint(
                condition=Q(every_hours__gte=1, every_hours__lte=MAX_INTERVAL_HOURS),
                name="policy_interval_bounds"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def interval(self) -> timedelta:
        return timedelta(hours=max(1, self.every_hours))

    def keyword_list(self) -> list[str]:
        return _lines(self.keywords)

    def keep_keyword_list(self) -> list[str]:
        return _lines(self.keep_keywords)

    def scope_label(self) -> str:
        if self.scope == self.Scope.PROVIDER:
            return f"Provider {self.provider}"
        if self.scope == self.Scope.CONNECTION and self.connection_id:
            return f"Connection {self.connection}"
        if self.scope == self.Scope.CHARACTER and self.character_id:
            return f"Character {self.character}"
        return "Everything the owner can access"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()][:20]


class PolicyRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", labels.POLICY_RUN_STATUS["queued"]
        RUNNING = "running", labels.POLICY_RUN_STATUS["running"]
        NOTHING = "nothing", labels.POLICY_RUN_STATUS["nothing"]
        CREATED = "created", labels.POLICY_RUN_STATUS["created"]
        REFUSED = "refused", labels.POLICY_RUN_STATUS["refused"]
        FAILED = "failed", labels.POLICY_RUN_STATUS["failed"]

    policy = models.ForeignKey(RetentionPolicy, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The dry-run report: per connection, how many conversations would go and be skipped.
    report = models.JSONField(default=dict, blank=True)
    note = models.TextField(blank=True)
    request = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Run {self.pk} of policy {self.policy_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status not in (self.Status.QUEUED, self.Status.RUNNING)


class JobNotification(models.Model):
    """The outbox: one row per job event to tell people about, written in the transaction
    that made the event, and sent (then marked sent) by a worker; what an outage stopped is
    sent again later. The unique key makes an event announced twice one row."""

    job = models.ForeignKey(ErasureJob, on_delete=models.CASCADE, related_name="notifications")
    # The event and when it happened, e.g. "finished:2025-01-01T10:00:00+00:00": a job
    # finished again after a retry is a new event.
    key = models.CharField(max_length=100)
    event = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set once every channel (e-mail, webhook) has delivered it.
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    email_done = models.BooleanField(default=False)
    webhook_done = models.BooleanField(default=False)
    email_sent = models.PositiveIntegerField(default=0)
    webhook_status = models.CharField(max_length=200, blank=True)
    last_error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["job", "key"], name="notification_once")]

    def __str__(self) -> str:
        return f"{self.event} of job {self.job_id}"
