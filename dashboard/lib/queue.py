"""The one place work is handed to Celery workers.

Tasks are sent by name, so nothing below `dashboard.tasks` imports it (see
docs/architecture.md, "Layers"); a message carries ids only. Work is sent once the
caller's transaction commits, so a worker never looks for a row that is not there yet, and
a rolled-back change queues nothing.
"""

from __future__ import annotations

from functools import partial

from celery import current_app
from django.db import transaction

SYNC = "dashboard.tasks.sync_connection"
ERASE = "dashboard.tasks.run_erasure"
POLICY = "dashboard.tasks.run_policy"
NOTIFY = "dashboard.tasks.notify_job"


def send(task: str, pk: int, *, copies: int = 1) -> None:
    """Queue ``task`` for the row ``pk`` after the current transaction commits (at once
    outside one). ``copies`` messages let that many workers share the work."""
    transaction.on_commit(partial(dispatch, task, pk, copies))


def dispatch(task: str, pk: int, copies: int = 1) -> None:
    """Hand the messages to the broker now (tests replace this to see what is sent)."""
    for _ in range(copies):
        current_app.send_task(task, args=[pk])
