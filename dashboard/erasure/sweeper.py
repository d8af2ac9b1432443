"""The clock of erasure jobs, run by Celery beat every few seconds.

It releases jobs whose cancel window is over, settles items whose worker died while they
were in flight (as `unknown`, so they are read back before anything is sent again),
requeues jobs with work due that no worker is on, and finishes jobs with nothing open that
no worker is on.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from ..models import ErasureItem, ErasureJob
from ..models.jobstate import Event
from . import worker

State = ErasureItem.State


def sweep() -> list[int]:
    """Returns the ids of the jobs it queued."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.LETHE_STUCK_AFTER)
    queued: list[int] = []
    for pk in ErasureJob.objects.filter(status=ErasureJob.Status.SCHEDULED,
                                        not_before__lte=now).values_list("pk", flat=True):
        # Another sweep (or a person cancelling) may have moved it on meanwhile.
        if ErasureJob.objects.transition_if_allowed(pk, Event.WINDOW_OVER):
            queued.append(pk)

    # Nobody is on a job whose heartbeat is stale: its in-flight items lost their worker.
    unattended = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale)
    ErasureItem.objects.filter(
        state=State.IN_FLIGHT, updated_at__lt=stale,
        job__in=ErasureJob.objects.filter(unattended),
    ).update(state=State.UNKNOWN, detail="The worker stopped while this was in flight; "
                                         "it will be read back before anything is resent.")

    due = ErasureItem.objects.filter(job=OuterRef("pk")).filter(
        Q(state=State.UNKNOWN) | Q(state=State.PENDING) & (
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    )
    for job in ErasureJob.objects.filter(
        Q(status=ErasureJob.Status.RUNNING) & unattended | Q(status=ErasureJob.Status.QUEUED),
        Exists(due),
    ):
        queued.append(job.pk)
    # A cancelled job still reads back what it sent but never settled (not at every sweep
    # while the provider is away: a failed read-back sets throttled_until).
    # Without its connection (removed) nothing can be read back any more.
    unsettled = ErasureItem.objects.filter(job=OuterRef("pk"), state__in=worker.TO_READ_BACK)
    for job in ErasureJob.objects.filter(status=ErasureJob.Status.CANCELLED,
                                         connection__isnull=False).filter(
        Exists(unsettled), Q(throttled_until__isnull=True) | Q(throttled_until__lte=now),
    ):
        queued.append(job.pk)
    # Nothing open and no worker on it: finish it. A job with a live worker is that worker's
    # to finish, after its read-back, so the record never says less than the worker knows.
    for job in ErasureJob.objects.filter(status=ErasureJob.Status.RUNNING).filter(
        unattended).exclude(
        Exists(ErasureItem.objects.filter(job=OuterRef("pk"), state__in=ErasureItem.OPEN))
    ):
        worker.finish_if_settled(job)
    queued = sorted(set(queued))
    for pk in queued:
        worker.enqueue(pk)
    return queued
