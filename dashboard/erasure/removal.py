"""Removing a connection: the stored key and the mirror go; receipts and the audit trail
stay readable (jobs keep a snapshot of the connection's label, provider and key hint).

Drafts never hold anything up: they are deleted. Jobs that have not sent anything yet are
cancelled. Only a job that may still be sending or reading back blocks the removal: without
the key, what it sent could never be settled, so the removal waits until it is done or
cancelled and settled (the safer way round).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection as db
from django.db import transaction
from django.db.models import Q

from ..models import (
    Connection,
    Conversation,
    ErasureItem,
    ErasureJob,
    Message,
    RetentionPolicy,
)
from ..team import audit
from . import lifecycle

UNSENT = [ErasureJob.Status.AWAITING_APPROVAL, ErasureJob.Status.SCHEDULED,
          ErasureJob.Status.QUEUED, ErasureJob.Status.PAUSED]


class StillWorking(Exception):
    """A job of the connection may still be sending or reading back."""


@dataclass
class Plan:
    """What removing the connection deletes, cancels, keeps, and what blocks it."""

    conversations: int
    messages: int
    sync_runs: int
    policies: list[RetentionPolicy]
    drafts: int
    cancelled: list[ErasureJob]
    kept: int  # jobs whose receipts stay
    busy: list[ErasureJob] = field(default_factory=list)


def _busy(connection: Connection) -> list[ErasureJob]:
    uncertain = ErasureItem.objects.filter(job__connection=connection,
                                           state__in=[ErasureItem.State.IN_FLIGHT,
                                                      ErasureItem.State.UNKNOWN])
    return list(connection.jobs.filter(
        Q(status=ErasureJob.Status.RUNNING) | Q(pk__in=uncertain.values("job_id"))
    ).order_by("id"))


def plan(connection: Connection) -> Plan:
    jobs = connection.jobs.all()
    busy = _busy(connection)
    return Plan(
        conversations=connection.conversations.count(),
        messages=Message.objects.filter(conversation__connection=connection).count(),
        sync_runs=connection.sync_runs.count(),
        policies=list(RetentionPolicy.objects.filter(
            Q(connection=connection) | Q(character__connection=connection)).distinct()),
        drafts=jobs.filter(status=ErasureJob.Status.DRAFT).count(),
        cancelled=[j for j in jobs.filter(status__in=UNSENT) if j not in busy],
        kept=jobs.exclude(status=ErasureJob.Status.DRAFT).count(),
        busy=busy,
    )


def remove(connection: Connection, user: Any, request: Any = None) -> Plan:
    """Remove the connection as ``plan`` describes; StillWorking while a job blocks it."""
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        done = plan(locked)
        if done.busy:
            raise StillWorking(", ".join(f"#{job.pk}" for job in done.busy))
        for job in done.cancelled:
            lifecycle.cancel(job, user)
            audit.record(user, audit.Action.ERASURE_CANCELLED, job, request,
                         step="cancel", reason="connection removed")
        locked.jobs.filter(status=ErasureJob.Status.DRAFT).delete()
        audit.record(user, audit.Action.CONNECTION_REMOVED, locked, request,
                     provider=locked.provider, conversations=done.conversations,
                     receipts_kept=done.kept)
        # In bulk, not one object at a time: a mirror can hold millions of messages.
        ErasureItem.objects.filter(job__connection=locked).update(conversation=None,
                                                                  message=None)
        conversations = Conversation._meta.db_table
        with db.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {Message._meta.db_table} WHERE conversation_id IN "  # noqa: S608  # nosec B608
                f"(SELECT id FROM {conversations} WHERE connection_id = %s)", [locked.pk])
            cursor.execute(f"DELETE FROM {conversations} WHERE connection_id = %s",  # noqa: S608  # nosec B608
                           [locked.pk])
        locked.delete()
    return done
