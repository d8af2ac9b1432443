"""Celery tasks: thin entry points into the services. Arguments are ids only; everything
else is read from the database. Nothing imports this module: work is queued by task name
through `lib.queue`, whose names must match the ones here."""

from __future__ import annotations

from celery import shared_task

from .erasure import notify, retention, sweeper, worker
from .mirror import sync


@shared_task(acks_late=True, reject_on_worker_lost=True)
def sync_connection(run_id: int) -> None:
    sync.perform_sync(run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_erasure(job_id: int) -> None:
    worker.work_job(job_id)


@shared_task
def sweep() -> int:
    """Release, requeue and settle erasure jobs (run by Celery beat)."""
    return len(sweeper.sweep())


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_policy(run_id: int) -> None:
    retention.perform_run(run_id)


@shared_task
def run_due_policies() -> int:
    """Queue a run of every due retention policy (run by Celery beat)."""
    return retention.queue_due_runs()


@shared_task
def notify_job(job_id: int) -> None:
    notify.deliver(job_id)
