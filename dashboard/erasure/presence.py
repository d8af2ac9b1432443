"""Who is working a job: a lease per worker, made when it joins, beaten while it works
(from a side thread during long provider calls), deleted when it leaves.

The leases decide how many workers a job has (never more than LETHE_ERASE_WORKERS,
however many task messages arrive) and whether anybody is on it: a lease that stopped
beating was a worker that died, and a job with no fresh lease is the sweeper's to bring
back at once, not after a long heartbeat timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Exists, OuterRef, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..lib import heartbeat
from ..models import ErasureItem, ErasureJob, ErasureLease
from ..models.jobstate import Event


def fresh_leases() -> Any:
    """``Exists`` of a fresh lease on the outer job: somebody is working it."""
    return Exists(ErasureLease.objects.filter(job=OuterRef("pk"),
                                              beat_at__gte=heartbeat.silent_since()))


def join(job: ErasureJob) -> int | None:
    """Start (or join) the job as one more worker; its lease id, or None when the job
    cannot start or already has all the workers it may."""
    now = timezone.now()
    with transaction.atomic():
        locked = ErasureJob.objects.select_for_update().get(pk=job.pk)
        working = locked.leases.filter(beat_at__gte=heartbeat.silent_since()).count()
        if working >= settings.LETHE_ERASE_WORKERS:
            return None
        # The first worker's start time stays when a second one joins.
        started = ErasureJob.objects.transition_if_allowed(
            job.pk, Event.START, started_at=Coalesce("started_at", Value(now)),
            heartbeat_at=now, throttled_until=None, last_error="")
        if started is None:
            return None
        return int(ErasureLease.objects.create(job=locked, beat_at=now).pk)


def leave(lease: int) -> None:
    try:
        ErasureLease.objects.filter(pk=lease).delete()
    except DatabaseError:
        pass  # the database is away: the lease goes stale, which says the same


def beat(job_id: int, lease: int, items: Sequence[int] = ()) -> None:
    """One heartbeat: the lease, the job, and the items in flight, skipping rows someone
    else holds locked rather than waiting for them."""
    with transaction.atomic():
        now = timezone.now()
        ErasureLease.objects.filter(pk=lease).update(beat_at=now)
        jobs = ErasureJob.objects.select_for_update(skip_locked=True).filter(
            pk=job_id).values_list("pk", flat=True)
        ErasureJob.objects.filter(pk__in=list(jobs)).update(heartbeat_at=now)
        if items:
            held = ErasureItem.objects.select_for_update(skip_locked=True).filter(
                pk__in=items, state=ErasureItem.State.IN_FLIGHT).values_list("pk", flat=True)
            ErasureItem.objects.filter(pk__in=list(held)).update(updated_at=now)


def keepalive(job_id: int, lease: int, items: Sequence[int] = ()
              ) -> AbstractContextManager[None]:
    """Beat from a side thread while a long provider call runs, so that neither the sweeper
    nor a new worker takes the job or its items from a worker still sending them. It never
    fails the call."""
    return heartbeat.beating(lambda: beat(job_id, lease, items),
                             name=f"keepalive-job-{job_id}")


def forget_stale() -> int:
    """Leases of workers long gone (they count for nothing already)."""
    return ErasureLease.objects.filter(beat_at__lt=timezone.now() - timedelta(hours=1)
                                       ).delete()[0]
