"""An erasure's life after the freeze (`freeze`): confirm (with the answer about pinned
messages), approve or reject, the cancel window, cancel, pause, resume, retry and skip.
The work itself is in `worker`, the clock in `sweeper`. Every status change goes through
`ErasureJob.objects.transition`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import ErasureItem, ErasureJob
from ..models.jobstate import Event
from . import notify, worker
from .approvers import can_approve
from .freeze import SelectionError, sendable_counts

State = ErasureItem.State
SentIf = ErasureItem.SentIf


class NotAllowed(Exception):
    """The person may not do that to this job (e.g. approve their own)."""


def needs_approval(total: int) -> bool:
    """Whether confirming a real erasure of ``total`` items waits for an approver."""
    return bool(settings.LETHE_APPROVAL_ALL) or total > settings.LETHE_APPROVAL_THRESHOLD


def confirm(jobs: Iterable[ErasureJob], dry_run: bool, include_pinned: bool = False,
            enqueue: bool = True) -> list[ErasureJob]:
    """Confirm draft jobs. Real erasures above the approval threshold wait for an approver;
    the others wait out the cancel window. A dry run sends nothing, so it starts at once.
    With `enqueue=False` the caller runs them itself (the management commands' default).
    SelectionError when, with this answer about pinned messages, nothing would be sent."""
    jobs = [job for job in jobs if job.status == ErasureJob.Status.DRAFT]
    now = timezone.now()
    confirmed = []
    with transaction.atomic():
        total = sendable_counts(jobs).total(include_pinned)
        if not total:
            raise SelectionError("Nothing would be sent: everything in this selection is "
                                 "skipped" + ("" if include_pinned else
                                              " unless pinned messages are included") + ".")
        _answer_pinned(jobs, include_pinned)
        approval = not dry_run and needs_approval(total)
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


def _answer_pinned(jobs: list[ErasureJob], include_pinned: bool) -> None:
    """Keep the items meant for this answer about pinned messages, drop the others: from
    here on every item is simply sent or skipped."""
    items = ErasureItem.objects.filter(job__in=jobs)
    if include_pinned:
        # The whole conversation goes instead of its messages one by one.
        items.filter(sent_if=SentIf.PINNED_KEPT).delete()
        items.filter(sent_if=SentIf.PINNED_INCLUDED).update(
            state=State.PENDING, detail="", settled_at=None)
    # Otherwise the whole-conversation items stay, skipped with the reason, beside the
    # messages sent in their place.
    items.exclude(sent_if=SentIf.ALWAYS).update(sent_if=SentIf.ALWAYS)


def release_if_due(job: ErasureJob, enqueue: bool = False) -> ErasureJob:
    if job.not_before and job.not_before <= timezone.now():
        job = ErasureJob.objects.transition(job.pk, Event.WINDOW_OVER)
        if enqueue:
            worker.enqueue(job.pk)
    return job


def approve(job: ErasureJob, user: Any, enqueue: bool = True) -> ErasureJob:
    if job.requested_by_id == user.pk:
        raise NotAllowed("You asked for this erasure; another approver must approve it.")
    if not can_approve(user, job):
        raise NotAllowed("Only people with the approver role can approve erasures.")
    now = timezone.now()
    with transaction.atomic():
        job = ErasureJob.objects.transition(
            job.pk, Event.APPROVE, approved_by=user, approved_at=now,
            not_before=now + timedelta(seconds=settings.LETHE_CANCEL_WINDOW))
        return release_if_due(job, enqueue)


def reject(job: ErasureJob, user: Any, reason: str) -> ErasureJob:
    """An approver says no, and why: nothing is sent, and the requester is told."""
    if not can_approve(user, job):
        raise NotAllowed("Only an approver who can see this connection, other than the "
                         "requester, can reject it.")
    reason = " ".join(reason.split())[:2000]
    if not reason:
        raise NotAllowed("Say why you reject it: the requester sees your reason.")
    now = timezone.now()
    with transaction.atomic():
        job = ErasureJob.objects.transition(job.pk, Event.REJECT, cancelled_by=user,
                                            rejected_reason=reason, finished_at=now)
        job.items.filter(state=State.PENDING).update(
            state=State.SKIPPED, settled_at=now,
            detail=f"Rejected by {user.get_username()}; not sent.")
        notify.announce(job)
    return job


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
