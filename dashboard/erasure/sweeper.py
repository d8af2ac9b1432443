"""The clock of erasure jobs, run by Celery beat every few seconds.

It releases jobs whose cancel window is over, settles items whose worker died while they
were in flight (as `unknown`, so they are read back before anything is sent again),
requeues jobs with work due that no worker is on (see `presence`) once the wait the worker
recorded is over, finishes jobs with nothing left that no worker is on, and sends the
notifications an outage held back.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from ..lib import heartbeat
from ..models import ErasureItem, ErasureJob
from ..models.jobstate import Event
from . import finding_alerts, notify, presence, worker

State = ErasureItem.State
# Workers asked for this long ago and still not there: their message was lost; ask again.
REQUEUE_AFTER = timedelta(seconds=60)


def sweep() -> list[int]:
    """Returns the ids of the jobs it queued."""
    now = timezone.now()
    stale = heartbeat.silent_since()
    queued: list[int] = []
    for pk in ErasureJob.objects.filter(status=ErasureJob.Status.SCHEDULED,
                                        not_before__lte=now).values_list("pk", flat=True):
        # Another sweep (or a person cancelling) may have moved it on meanwhile.
        if ErasureJob.objects.transition_if_allowed(pk, Event.WINDOW_OVER):
            queued.append(pk)

    # Nobody is on a job without a fresh lease: its in-flight items lost their worker.
    nobody = ~presence.fresh_leases()
    ErasureItem.objects.filter(
        state=State.IN_FLIGHT, updated_at__lt=stale,
        job__in=ErasureJob.objects.filter(nobody),
    ).update(state=State.UNKNOWN, detail="The worker stopped while this was in flight; "
                                         "it will be read back before anything is resent.")

    # Work is due and nobody is on it: once any wait it recorded is over, and unless
    # workers were asked for a moment ago and none has come since (their message may still
    # be on its way; one that came and died has left its beat after `queued_at`).
    due = ErasureItem.objects.filter(job=OuterRef("pk")).filter(
        Q(state=State.UNKNOWN) | Q(state=State.ERASED, settled_at__isnull=True)
        | Q(state=State.PENDING) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    )
    ready = ((Q(throttled_until__isnull=True) | Q(throttled_until__lte=now))
             & (Q(queued_at__isnull=True) | Q(queued_at__lt=now - REQUEUE_AFTER)
                | Q(heartbeat_at__gt=F("queued_at"))))
    live = Q(connection__isnull=False)
    queued += ErasureJob.objects.filter(
        live, ready, nobody, Exists(due),
        status__in=[ErasureJob.Status.RUNNING, ErasureJob.Status.QUEUED],
    ).values_list("pk", flat=True)
    # A cancelled job still reads back what it sent but never settled.
    unsettled = ErasureItem.objects.filter(worker.TO_READ_BACK, job=OuterRef("pk"))
    queued += ErasureJob.objects.filter(
        live, ready, nobody, Exists(unsettled), status=ErasureJob.Status.CANCELLED,
    ).values_list("pk", flat=True)
    # Nothing left and nobody on it (all skipped, say): finish it. A job with a worker on
    # it is that worker's to finish, so the record never says less than the worker knows.
    for job in ErasureJob.objects.filter(
            nobody, status__in=[ErasureJob.Status.RUNNING, ErasureJob.Status.QUEUED]):
        worker.finish_if_settled(job)
    presence.forget_stale()
    notify.send_due()
    finding_alerts.send_due()
    queued = sorted(set(queued))
    for pk in queued:
        worker.enqueue(pk)
    return queued
