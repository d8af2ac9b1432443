"""An erasure's life after the freeze (`freeze`): confirm (with the answer about pinned
messages), approve or reject, the cancel window, cancel, pause, resume, retry and skip.
The work itself is in `worker`, the clock in `sweeper`. Every status change goes through
`ErasureJob.objects.transition`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..lib import locks
from ..models import ErasureItem, ErasureJob
from ..models.jobstate import Event
from ..team import audit
from ..team.roles import Role
from . import notify, worker
from .approvers import can_approve
from .freeze import SelectionError, mark_held, mark_protected, sendable_counts

State = ErasureItem.State
SentIf = ErasureItem.SentIf


class NotAllowed(Exception):
    """The person may not do that to this job (e.g. approve their own)."""


def needs_approval(total: int) -> bool:
    """Whether confirming a real erasure of ``total`` items waits for an approver."""
    return bool(settings.LETHE_APPROVAL_ALL) or total > settings.LETHE_APPROVAL_THRESHOLD


def confirm(jobs: Iterable[ErasureJob], dry_run: bool, include_pinned: bool = False,
            enqueue: bool = True, *, expected: int | None = None,
            hold_for_approval: bool = False) -> list[ErasureJob]:
    """Confirm draft jobs. Real erasures above the approval threshold (or all of them, with
    ``hold_for_approval``) wait for an approver; the others wait out the cancel window. A
    dry run sends nothing, so it starts at once. With `enqueue=False` the caller runs them
    itself (the management commands' default).

    What another job took since the freeze, and what was put on the keep-list since, is
    skipped first (no item is ever in two unfinished jobs; nothing protected is sent).
    SelectionError, with nothing confirmed, when nothing would be sent, or when
    ``expected`` (the total the person saw) is no longer the total."""
    jobs = [job for job in jobs if job.status == ErasureJob.Status.DRAFT]
    now = timezone.now()
    confirmed = []
    with transaction.atomic():
        locks.hold(locks.BOOKING, [job.connection_id for job in jobs])
        items = ErasureItem.objects.filter(job__in=jobs)
        mark_held(items, jobs)
        mark_protected(items)
        total = sendable_counts(jobs).total(include_pinned)
        problem = _problem(total, expected, include_pinned)
        if not problem:
            _answer_pinned(jobs, include_pinned)
            approval = not dry_run and (hold_for_approval or needs_approval(total))
            for job in jobs:
                if not sendable_counts([job]).total(include_pinned):
                    # A connection of a larger request of which everything is kept or held
                    # elsewhere: nothing is queued with nothing to send, so no job for it.
                    job.delete()
                    continue
                fields: dict[str, Any] = {"dry_run": dry_run, "include_pinned": include_pinned,
                                          "confirmed_at": now}
                if approval:
                    confirmed.append(ErasureJob.objects.transition(job.pk, Event.CONFIRM,
                                                                   **fields))
                    notify.announce(confirmed[-1])  # approvers hear of it once committed
                    continue
                window = timedelta(seconds=0 if dry_run else settings.LETHE_CANCEL_WINDOW)
                job = ErasureJob.objects.transition(job.pk, Event.CONFIRM_DIRECT,
                                                    not_before=now + window, **fields)
                confirmed.append(release_if_due(job, enqueue))
    # Raised once what was found held is committed, so the preview shows it from now on.
    if problem:
        raise SelectionError(problem)
    return confirmed


def _problem(total: int, expected: int | None, include_pinned: bool) -> str:
    if not total:
        return ("Nothing would be sent: everything in this selection is skipped"
                + ("" if include_pinned else " unless pinned messages are included") + ".")
    if expected is not None and total != expected:
        return (f"The numbers changed since the page was shown ({expected} then, {total} "
                "now): something was taken by another job or put on the keep-list "
                "meanwhile. Review them and confirm again.")
    return ""


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
    """Send the failed items again, except what another unfinished job holds by now."""
    if job.connection_id is None:
        raise NotAllowed("This job's connection was removed: nothing can be sent again.")
    with transaction.atomic():
        locks.hold(locks.BOOKING, [job.connection_id])
        failing = job.items.filter(state__in=ErasureItem.FAILING)
        mark_held(failing, [job])
        if not failing.exists():
            raise NotAllowed("No failed item can be tried again.")
        job = ErasureJob.objects.transition(job.pk, Event.RETRY, finished_at=None)
        count = failing.update(
            state=State.PENDING, attempts=0, next_attempt_at=None, settled_at=None,
            detail=f"Retry requested by {user.get_username()}.")
        if job.status != ErasureJob.Status.PAUSED:
            worker.enqueue(job.pk)
    return count


def skip_failed(job: ErasureJob, user: Any) -> int:
    return job.items.filter(state__in=ErasureItem.FAILING).update(
        state=State.SKIPPED, detail=f"Failed, then skipped by {user.get_username()}.",
        settled_at=timezone.now())


@dataclass(frozen=True)
class Step:
    """What a person can do to a job from a page: who may, how it is audited, what they
    are told."""

    call: Callable[[ErasureJob, Any, str], object]  # (job, person, reason)
    role: Role
    audited_as: str
    done: str


STEPS: dict[str, Step] = {
    "approve": Step(lambda job, user, _: approve(job, user), Role.APPROVER,
                    audit.Action.ERASURE_APPROVED, "Approved."),
    "reject": Step(reject, Role.APPROVER, audit.Action.ERASURE_REJECTED,
                   "Rejected: nothing will be sent."),
    # Cancelling is the safe direction: anyone who can see the job may do it.
    "cancel": Step(lambda job, user, _: cancel(job, user), Role.VIEWER,
                   audit.Action.ERASURE_CANCELLED, "Cancelled: nothing more will be sent."),
    "pause": Step(lambda job, user, _: pause(job, user), Role.OPERATOR,
                  audit.Action.ERASURE_CHANGED, "Paused."),
    "resume": Step(lambda job, user, _: resume(job, user), Role.OPERATOR,
                   audit.Action.ERASURE_CHANGED, "Resumed."),
    "retry": Step(lambda job, user, _: retry_failed(job, user), Role.OPERATOR,
                  audit.Action.ERASURE_CHANGED, "Failed items will be tried again."),
    "skip": Step(lambda job, user, _: skip_failed(job, user), Role.OPERATOR,
                 audit.Action.ERASURE_CHANGED, "Failed items skipped."),
}
