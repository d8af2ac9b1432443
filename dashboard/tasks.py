"""Celery tasks. Arguments are ids only; everything else is read from the database."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import notify, policies, runner, sweeper, sync


@shared_task(acks_late=True, reject_on_worker_lost=True)
def sync_connection(run_id: int) -> None:
    sync.run(run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_erasure(job_id: int) -> None:
    runner.run(job_id)


def start_erasure(job_id: int) -> None:
    """Queue the job for LETHE_ERASE_WORKERS workers; they share its items by row locks."""
    for _ in range(settings.LETHE_ERASE_WORKERS):
        run_erasure.delay(job_id)


@shared_task
def sweep() -> int:
    """Release, requeue and settle erasure jobs (run by Celery beat)."""
    return len(sweeper.sweep())


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_policy(run_id: int) -> None:
    policies.run(run_id)


@shared_task
def run_due_policies() -> int:
    """Queue a run of every due retention policy (run by Celery beat); runs still queued
    after a while lost their message and are sent again (a run is claimed only once)."""
    ids = policies.queue_due() + policies.lost_runs()
    for pk in ids:
        run_policy.delay(pk)
    return len(ids)


@shared_task
def notify_job(job_id: int) -> None:
    notify.deliver(job_id)
