"""Celery tasks. Arguments are ids only; everything else is read from the database."""

from __future__ import annotations

from celery import shared_task

from . import runner, sweeper, sync


@shared_task(acks_late=True, reject_on_worker_lost=True)
def sync_connection(run_id: int) -> None:
    sync.run(run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_erasure(job_id: int) -> None:
    runner.run(job_id)


@shared_task
def sweep() -> int:
    """Release, requeue and settle erasure jobs (run by Celery beat)."""
    return len(sweeper.sweep())
