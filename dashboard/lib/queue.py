"""The one place work is handed to Celery workers.

Tasks are sent by name, so nothing below `dashboard.tasks` imports it (see
docs/architecture.md, "Layers"); a message carries ids only. Work is sent once the
caller's transaction commits, so a worker never looks for a row that is not there yet, and
a rolled-back change queues nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from celery import current_app
from django.db import transaction

log = logging.getLogger(__name__)

SYNC = "dashboard.tasks.sync_connection"
ERASE = "dashboard.tasks.run_erasure"
POLICY = "dashboard.tasks.run_policy"
NOTIFY = "dashboard.tasks.notify_job"
NOTIFY_FINDINGS = "dashboard.tasks.notify_findings"


def send(task: str, pk: int, *, copies: int = 1,
         on_failure: Callable[[Exception], object] | None = None) -> None:
    """Queue ``task`` for the row ``pk`` after the current transaction commits (at once
    outside one). ``copies`` messages let that many workers share the work.

    The broker may be away: then nothing is raised into the page or task that asked (the
    row is there, and the sweeper or the person asks again), the failure is logged, and
    ``on_failure`` is told, to record it where people will see it."""
    transaction.on_commit(partial(_dispatch_or_report, task, pk, copies, on_failure))


def _dispatch_or_report(task: str, pk: int, copies: int,
                        on_failure: Callable[[Exception], object] | None) -> None:
    try:
        dispatch(task, pk, copies)
    except Exception as exc:  # the broker is away (each transport raises its own errors)
        log.warning("could not queue %s for %s: %s", task.rsplit(".", 1)[-1], pk,
                    type(exc).__name__)
        if on_failure is not None:
            on_failure(exc)


def dispatch(task: str, pk: int, copies: int = 1) -> None:
    """Hand the messages to the broker now (tests replace this to see what is sent)."""
    for _ in range(copies):
        current_app.send_task(task, args=[pk])
