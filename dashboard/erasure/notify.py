"""Telling people when a job finishes, fails or waits for approval: e-mail through Django's
mail settings and an optional webhook (LETHE_WEBHOOK_URL).

`announce` is called where the event happens and only queues a task after commit; the
worker sends. Each event is sent at most once: a JobNotification row keyed by the event
and its time is claimed before sending, so a redelivered task or a second worker sends
nothing. Nothing here may break a job: every failure is logged (without the URL, which may
hold a token) and recorded on the notification row. Payloads hold ids, states, counts and
a link; never a secret and never message text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse

from ..lib import queue
from ..models import ErasureItem, ErasureJob, JobNotification
from ..models.jobstate import Status
from .approvers import approvers

log = logging.getLogger(__name__)

FINISHED, FAILED, AWAITING, REJECTED = "finished", "failed", "awaiting_approval", "rejected"
SUBJECTS = {
    FINISHED: "Lethe: erasure job #{job} finished",
    FAILED: "Lethe: erasure job #{job} finished with failures",
    AWAITING: "Lethe: erasure job #{job} waits for your approval",
    REJECTED: "Lethe: erasure job #{job} was rejected",
}


def announce(job: ErasureJob) -> None:
    """Queue the notification for the job's current event, once the change is committed."""
    queue.send(queue.NOTIFY, job.pk)


def event_of(job: ErasureJob, counts: dict[str, int]) -> tuple[str, str] | None:
    """The event the job is at (and its once-only key), or None when there is nothing to say."""
    if job.status == Status.AWAITING_APPROVAL and job.confirmed_at:
        return AWAITING, f"{AWAITING}:{job.confirmed_at.isoformat()}"
    if job.status == Status.CANCELLED and job.rejected_reason and job.finished_at:
        return REJECTED, f"{REJECTED}:{job.finished_at.isoformat()}"
    if job.status == Status.DONE and job.finished_at:
        event = FAILED if any(counts.get(s) for s in ErasureItem.FAILING) else FINISHED
        return event, f"{event}:{job.finished_at.isoformat()}"
    return None


def link(job: ErasureJob) -> str:
    return settings.LETHE_BASE_URL.rstrip("/") + reverse("job", args=[job.pk])


def payload(job: ErasureJob, event: str, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "event": event,
        "job": job.pk,
        "request": str(job.request),
        "status": job.status,
        "dry_run": job.dry_run,
        "provider": job.provider,
        "connection": job.connection_id,
        "counts": {state: n for state, n in counts.items() if n},
        "link": link(job),
    }


def deliver(job_id: int) -> JobNotification | None:
    """Send the notification of the job's current event unless it was sent already."""
    job = ErasureJob.objects.select_related("connection", "requested_by").filter(
        pk=job_id).first()
    if job is None:
        return None
    counts = job.counts()
    found = event_of(job, counts)
    if found is None:
        return None
    event, key = found
    try:
        with transaction.atomic():
            note = JobNotification.objects.create(job=job, key=key, event=event)
    except IntegrityError:
        return None  # somebody already announced this very event
    body = payload(job, event, counts)
    note.email_sent = _email(job, event, body)
    note.webhook_status = _webhook(body)
    note.save(update_fields=["email_sent", "webhook_status"])
    return note


def recipients(job: ErasureJob, event: str) -> list[str]:
    """The requester for an outcome; for approval, every approver who can see the
    connection and is not the requester (who may not approve their own job)."""
    found = list(settings.LETHE_NOTIFY_EMAILS)
    if event != AWAITING:
        if job.requested_by.email:
            found.append(job.requested_by.email)
        return list(dict.fromkeys(found))
    found += [user.email for user in approvers(job) if user.email]
    return list(dict.fromkeys(found))


def _email(job: ErasureJob, event: str, body: dict[str, Any]) -> int:
    if not settings.LETHE_EMAIL_NOTIFICATIONS:
        return 0
    to = recipients(job, event)
    if not to:
        return 0
    counts = ", ".join(f"{ErasureItem.State(s).label.lower()}: {n}"
                       for s, n in body["counts"].items()) or "no items"
    kind = "Dry run" if job.dry_run else "Erasure"
    text = (f"{kind} job #{job.pk} on {job.connection_label} ({job.provider_label})"
            f" is now: {ErasureJob.LABELS[Status(job.status)]}.\nItems: {counts}.\n\n"
            f"{body['link']}\n")
    try:
        return send_mail(SUBJECTS[event].format(job=job.pk), text, None, to)
    except Exception as exc:  # a mail outage must not fail the worker's task
        log.warning("notification e-mail for job %s failed: %s", job.pk, type(exc).__name__)
        return 0


def _webhook(body: dict[str, Any]) -> str:
    url = settings.LETHE_WEBHOOK_URL
    if not url:
        return ""
    data = json.dumps(body, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Lethe"}
    if settings.LETHE_WEBHOOK_SECRET:
        digest = hmac.new(settings.LETHE_WEBHOOK_SECRET.encode(), data, hashlib.sha256)
        headers["X-Lethe-Signature"] = f"sha256={digest.hexdigest()}"
    try:
        response = httpx.post(url, content=data, headers=headers,
                              timeout=settings.LETHE_WEBHOOK_TIMEOUT, follow_redirects=False)
    except Exception as exc:  # the URL is never logged: it may carry a token
        log.warning("notification webhook for job %s failed: %s", body["job"],
                    type(exc).__name__)
        return f"error: {type(exc).__name__}"
    if response.status_code >= 300:
        log.warning("notification webhook for job %s answered %s", body["job"],
                    response.status_code)
    return str(response.status_code)
