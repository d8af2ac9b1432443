"""Erasure requests from selection to schedule: freeze, confirm, approve, cancel, pause,
resume, retry and skip. The work itself is in `worker`, the clock in `sweeper`.

The selection is frozen into items when the preview is made: what people review is exactly
what a confirmed job sends. Protected conversations, and conversations holding pinned
messages unless pinned ones are included, become skipped items with the reason recorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection as db
from django.db import models, transaction
from django.db.models import (
    Case,
    CharField,
    DateTimeField,
    Exists,
    F,
    JSONField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Concat
from django.utils import timezone

import providers

from ..models import Conversation, ErasureItem, ErasureJob, Message, MirrorState
from ..models.jobstate import Event
from ..team.roles import Role, at_least
from . import notify, worker

State = ErasureItem.State
PROTECTED = "Protected (on the keep-list); not sent."
PINNED = "Holds pinned messages; not sent unless pinned messages are included."
PINNED_MESSAGE = "Pinned message; not sent unless pinned messages are included."


class SelectionError(Exception):
    """The selection cannot become a job (empty, or nothing erasable in it)."""


class NotAllowed(Exception):
    """The person may not do that to this job (e.g. approve their own)."""


def freeze(user: Any, conversations: QuerySet[Conversation], scope: dict[str, Any],
           dry_run: bool = False) -> uuid.UUID:
    """Draft one job per connection holding exactly these conversations, as of now."""
    pinned = Message.objects.filter(conversation=OuterRef("pk"), pinned=True,
                                    mirror_state=MirrorState.PRESENT)
    rows = conversations.filter(mirror_state=MirrorState.PRESENT).annotate(
        has_pinned=Exists(pinned)
    ).annotate(
        i_connection=F("connection_id"),
        i_kind=Value(ErasureItem.Kind.CONVERSATION.value),
        i_conv=F("id"),
        i_msg=Cast(Value(None), models.BigIntegerField()),
        i_pid=F("provider_id"),
        i_conv_pid=F("provider_id"),
        i_char=Coalesce(F("character__provider_id"), Value("")),
        i_skip=Case(When(protected=True, then=Value(PROTECTED)),
                    When(has_pinned=True, then=Value(PINNED)), default=Value("")),
    )
    return _draft(user, scope, dry_run, rows)


def freeze_messages(user: Any, messages: QuerySet[Message], scope: dict[str, Any],
                    dry_run: bool = False) -> uuid.UUID:
    """Draft jobs for single messages, where the provider can erase single messages."""
    erasable = [name for name, cls in providers.REGISTRY.items()
                if "message" in cls.capabilities.erase_kinds]
    rows = messages.filter(
        mirror_state=MirrorState.PRESENT, conversation__mirror_state=MirrorState.PRESENT,
        conversation__connection__provider__in=erasable,
    ).annotate(
        i_connection=F("conversation__connection_id"),
        i_kind=Value(ErasureItem.Kind.MESSAGE.value),
        i_conv=F("conversation_id"),
        i_msg=F("id"),
        i_pid=F("provider_id"),
        i_conv_pid=F("conversation__provider_id"),
        i_char=Coalesce(F("conversation__character__provider_id"), Value("")),
        i_skip=Case(When(conversation__protected=True, then=Value(PROTECTED)),
                    When(pinned=True, then=Value(PINNED_MESSAGE)), default=Value("")),
    )
    return _draft(user, scope, dry_run, rows)


# The item columns, and the annotations of a freeze query that fill them, in one order.
_ITEM_COLUMNS = {
    "job_id": "i_job", "kind": "i_kind", "conversation_id": "i_conv",
    "message_id": "i_msg", "provider_id": "i_pid",
    "conversation_provider_id": "i_conv_pid", "character_provider_id": "i_char",
    "idempotency_key": "i_key", "state": "i_state", "detail": "i_skip",
    "settled_at": "i_settled", "attempts": "i_attempts", "response": "i_response",
    "updated_at": "i_updated",
}


def _draft(user: Any, scope: dict[str, Any], dry_run: bool, rows: QuerySet[Any]
           ) -> uuid.UUID:
    """One draft job per connection. ``rows`` is a queryset annotated with the item
    columns (``i_connection`` ... ``i_skip``, as the freezes make it), copied with one
    INSERT ... SELECT, without passing through Python."""
    request = uuid.uuid4()
    now = timezone.now()
    with transaction.atomic():
        connection_ids = sorted(set(
            rows.order_by().values_list("i_connection", flat=True).distinct()))
        if not connection_ids:
            raise SelectionError("Nothing to erase: the selection holds nothing still present "
                                 "that the provider can erase.")
        jobs = {cid: ErasureJob.objects.create(request=request, connection_id=cid,
                                               requested_by=user, dry_run=dry_run, scope=scope)
                for cid in connection_ids}
        skipped = ~Q(i_skip="")
        select = rows.annotate(
            i_job=Case(*[When(i_connection=cid, then=Value(job.pk))
                         for cid, job in jobs.items()],
                       output_field=models.BigIntegerField()),
        ).annotate(
            i_key=Concat(Cast("i_job", CharField()), Value(":"), "i_kind", Value(":"),
                         "i_conv_pid", Value(":"), "i_pid", output_field=CharField()),
            i_state=Case(When(skipped, then=Value(State.SKIPPED.value)),
                         default=Value(State.PENDING.value)),
            i_settled=Case(When(skipped, then=Value(now)),
                           default=Value(None), output_field=DateTimeField()),
            i_attempts=Value(0),
            i_response=Value({}, output_field=JSONField()),
            i_updated=Value(now, output_field=DateTimeField()),
        ).order_by("i_conv", "i_msg")
        sql, params = select.values_list(*_ITEM_COLUMNS.values()).query.sql_with_params()
        with db.cursor() as cursor:
            cursor.execute(f"INSERT INTO {ErasureItem._meta.db_table} "  # noqa: S608  # nosec B608
                           f"({', '.join(_ITEM_COLUMNS)}) {sql}", params)
    return request


def sendable(job: ErasureJob) -> int:
    return job.items.exclude(state=State.SKIPPED).count()


def needs_approval(jobs: Iterable[ErasureJob], total: int | None = None) -> bool:
    """Whether confirming these jobs waits for an approver; `total` is their sendable
    item count when the caller has it already."""
    if settings.LETHE_APPROVAL_ALL:
        return True
    if total is None:
        total = sum(sendable(job) for job in jobs)
    return total > settings.LETHE_APPROVAL_THRESHOLD


def confirm(jobs: Iterable[ErasureJob], dry_run: bool, include_pinned: bool = False,
            enqueue: bool = True) -> list[ErasureJob]:
    """Confirm draft jobs. Real erasures above the approval threshold wait for an approver;
    the others wait out the cancel window. A dry run sends nothing, so it starts at once.
    With `enqueue=False` the caller runs them itself (the management commands' default)."""
    jobs = [job for job in jobs if job.status == ErasureJob.Status.DRAFT]
    now = timezone.now()
    confirmed = []
    with transaction.atomic():
        if include_pinned:
            ErasureItem.objects.filter(
                job__in=jobs, state=State.SKIPPED, detail__in=[PINNED, PINNED_MESSAGE]
            ).update(state=State.PENDING, detail="", settled_at=None)
        approval = not dry_run and needs_approval(jobs)
        for job in jobs:
            fields: dict[str, Any] = {"dry_run": dry_run, "include_pinned": include_pinned,
                                      "confirmed_at": now}
            if approval:
                confirmed.append(ErasureJob.objects.transition(job.pk, Event.CONFIRM, **fields))
                notify.announce(confirmed[-1])  # approvers hear of it once it is committed
                continue
            window = timedelta(seconds=0 if dry_run else settings.LETHE_CANCEL_WINDOW)
            job = ErasureJob.objects.transition(job.pk, Event.CONFIRM_DIRECT,
                                                not_before=now + window, **fields)
            confirmed.append(release_if_due(job, enqueue))
    return confirmed


def release_if_due(job: ErasureJob, enqueue: bool = False) -> ErasureJob:
    if job.not_before and job.not_before <= timezone.now():
        job = ErasureJob.objects.transition(job.pk, Event.WINDOW_OVER)
        if enqueue:
            worker.enqueue(job.pk)
    return job


def can_approve(user: Any, job: ErasureJob) -> bool:
    return job.requested_by_id != user.pk and at_least(user, Role.APPROVER)


def approve(job: ErasureJob, user: Any, enqueue: bool = True) -> ErasureJob:
    if job.requested_by_id == user.pk:
        raise NotAllowed("You asked for this erasure; another approver must approve it.")
    if not at_least(user, Role.APPROVER):
        raise NotAllowed("Only people with the approver role can approve erasures.")
    now = timezone.now()
    with transaction.atomic():
        job = ErasureJob.objects.transition(
            job.pk, Event.APPROVE, approved_by=user, approved_at=now,
            not_before=now + timedelta(seconds=settings.LETHE_CANCEL_WINDOW))
        return release_if_due(job, enqueue)


def cancel(job: ErasureJob, user: Any) -> ErasureJob:
    """Stop a job: nothing pending is sent. Items already sent keep their outcome, and an
    uncertain one is still read back so the receipt says what really happened."""
    with transaction.atomic():
        job = ErasureJob.objects.transition(job.pk, Event.CANCEL, cancelled_by=user,
                                            finished_at=timezone.now())
        job.items.filter(state=State.PENDING).update(
            state=State.SKIPPED, detail=f"Cancelled by {user.get_username()} before sending.",
            settled_at=timezone.now())
        if job.items.filter(state__in=[State.IN_FLIGHT, State.UNKNOWN]).exists():
            worker.enqueue(job.pk)
    return job


def pause(job: ErasureJob, user: Any) -> ErasureJob:
    with transaction.atomic():
        return ErasureJob.objects.transition(job.pk, Event.PAUSE, paused_for_auth=False,
                                             last_error=f"Paused by {user.get_username()}.")


def resume(job: ErasureJob, user: Any | None = None) -> ErasureJob:
    with transaction.atomic():
        job = ErasureJob.objects.transition(job.pk, Event.RESUME, paused_for_auth=False,
                                            last_error="", throttled_until=None)
        worker.enqueue(job.pk)
    return job


def resume_after_key_fix(connection_id: int) -> int:
    """A replaced key resumes the jobs that paused because the provider refused the old one."""
    count = 0
    for job in ErasureJob.objects.filter(connection_id=connection_id, paused_for_auth=True,
                                         status=ErasureJob.Status.PAUSED):
        resume(job)
        count += 1
    return count


def retry_failed(job: ErasureJob, user: Any) -> int:
    with transaction.atomic():
        job = ErasureJob.objects.transition(job.pk, Event.RETRY, finished_at=None)
        count = job.items.filter(state__in=ErasureItem.FAILING).update(
            state=State.PENDING, attempts=0, next_attempt_at=None, settled_at=None,
            detail=f"Retry requested by {user.get_username()}.")
        if job.status != ErasureJob.Status.PAUSED:
            worker.enqueue(job.pk)
    return count


def skip_failed(job: ErasureJob, user: Any) -> int:
    return job.items.filter(state__in=ErasureItem.FAILING).update(
        state=State.SKIPPED, detail=f"Failed, then skipped by {user.get_username()}.",
        settled_at=timezone.now())
