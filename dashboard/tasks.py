"""Celery tasks. Arguments are ids only; everything else is read from the database."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from . import erasure, sync
from .models import ErasureJob


@shared_task(acks_late=True, reject_on_worker_lost=True)
def sync_connection(run_id: int) -> None:
    sync.run(run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_erasure(job_id: int) -> None:
    erasure.run(job_id)


@shared_task
def resume_due_jobs() -> int:
    """Requeue jobs whose provider-imposed wait is over (run by Celery beat)."""
    due = ErasureJob.objects.filter(
        status=ErasureJob.Status.PAUSED, throttled_until__lte=timezone.now()
    ).values_list("pk", flat=True)
    count = 0
    for pk in due:
        run_erasure.delay(pk)
        count += 1
    return count
