"""Celery tasks: thin entry points into the services. Arguments are ids only; everything
else is read from the database. Nothing imports this module: work is queued by task name
through `lib.queue`, whose names must match the ones here.

A database outage during a task is waited out: the task is tried again with a growing wait
until the database is back (what it does is read from and settled in the tables, so doing
it again is safe). Periodic tasks take their tick first, so two beats count as one.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from .erasure import finding_alerts, notify, retention, sweeper, ticks, worker
from .mirror import sync

ON_OUTAGE: dict[str, Any] = {
    "autoretry_for": (DatabaseError,), "retry_backoff": 2, "retry_backoff_max": 60,
    "retry_jitter": True, "max_retries": None,
}


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, **ON_OUTAGE)
def sync_connection(self: Any, run_id: int) -> None:
    sync.perform_sync(run_id, resume=self.request.retries > 0)


@shared_task(acks_late=True, reject_on_worker_lost=True, **ON_OUTAGE)
def run_erasure(job_id: int) -> None:
    worker.work_job(job_id)


@shared_task
def sweep() -> int:
    """Release, requeue and settle erasure jobs (run by Celery beat)."""
    if not ticks.take("sweep", settings.LETHE_SWEEP_INTERVAL):
        return 0
    return len(sweeper.sweep())


@shared_task(acks_late=True, reject_on_worker_lost=True, **ON_OUTAGE)
def run_policy(run_id: int) -> None:
    retention.perform_run(run_id)


@shared_task
def run_due_policies() -> int:
    """Queue a run of every due retention policy (run by Celery beat)."""
    if not ticks.take("policies", settings.LETHE_POLICY_INTERVAL):
        return 0
    return retention.queue_due_runs()


@shared_task(acks_late=True, **ON_OUTAGE)
def notify_job(job_id: int) -> None:
    notify.deliver(job_id)


@shared_task(acks_late=True, **ON_OUTAGE)
def notify_findings(notice_id: int) -> None:
    finding_alerts.deliver(notice_id)
