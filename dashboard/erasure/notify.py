"""Telling people when a job finishes, fails or waits for approval: e-mail through Django's
mail settings and an optional webhook (LETHE_WEBHOOK_URL).

`announce` is called where the event happens: it writes the event into the outbox
(JobNotification, keyed by the event and its time, so it is written once) in that
transaction, and queues a task after commit; the worker sends and marks it sent, and what
an outage of the broker, the mail server or the webhook's receiver held back is sent again
later (the sweeper asks for it), so a notification is delayed, never lost. Nothing here may
break a job: every failure is logged (without the URL, which may hold a token) and
recorded on the notification row. Payloads hold ids, states, counts and
a link; never a secret and never message text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from ..lib import labels, queue
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
    """Put the notification of the job's current event in the outbox, in the transaction
    that made the event (so an outage of the broker or the mail server only delays it),
    and ask a worker to send it once that commits."""
    found = event_of(job, job.counts())
    if found is None:
        return
    event, key = found
    _, created = JobNotification.objects.get_or_create(job=job, key=key,
                                                       defaults={"event": event})
    if created:
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


def deliver(job_id: int) -> list[JobNotification]:
    """Send what the job's outbox holds that is due; return what was sent (fully)."""
    pending = JobNotification.objects.filter(job_id=job_id, sent_at__isnull=True).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now()))
    sent = []
    for pk in pending.order_by("id").values_list("pk", flat=True):
        note = _send(pk)
        if note is not None and note.sent_at:
            sent.append(note)
    return sent


def send_due() -> int:
    """Ask workers to send what the outbox still holds (a message lost in an outage, a
    channel that failed); returns for how many jobs."""
    settled = timezone.now() - timedelta(seconds=30)  # a new one's own message is on its way
    jobs = set(JobNotification.objects.filter(sent_at__isnull=True).filter(
        Q(next_attempt_at__isnull=True, created_at__lt=settled)
        | Q(next_attempt_at__lte=timezone.now())).values_list("job_id", flat=True))
    for job_id in sorted(jobs):
        queue.send(queue.NOTIFY, job_id)
    return len(jobs)


def _send(pk: int) -> JobNotification | None:
    """Send one notification's channels still to do, holding its row, so that a second
    worker sends nothing; a failed channel is tried again later, with a growing wait."""
    with transaction.atomic():
        note = JobNotification.objects.select_for_update(skip_locked=True).select_related(
            "job__requested_by").filter(pk=pk, sent_at__isnull=True).first()
        if note is None:
            return None
        job = note.job
        body = payload(job, note.event, job.counts())
        problems = []
        if not note.email_done:
            try:
                note.email_sent = _email(job, note.event, body)
                note.email_done = True
            except Exception as exc:  # a mail outage must not fail the worker's task
                log.warning("notification e-mail for job %s failed: %s", job.pk,
                            type(exc).__name__)
                problems.append(f"e-mail: {type(exc).__name__}")
        if not note.webhook_done:
            note.webhook_status = post_webhook(body, f"job {job.pk}")
            note.webhook_done = note.webhook_status == "" or note.webhook_status[:1] == "2"
            if not note.webhook_done:
                problems.append(f"webhook: {note.webhook_status}")
        note.attempts += 1
        now = timezone.now()
        if problems:
            note.last_error = "; ".join(problems)[:200]
            note.next_attempt_at = now + timedelta(seconds=min(3600, 30 * 2 ** note.attempts))
        else:
            note.sent_at, note.last_error = now, ""
        note.save()
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
    """How many were sent; raises when the mail server would not take it."""
    if not settings.LETHE_EMAIL_NOTIFICATIONS:
        return 0
    to = recipients(job, event)
    if not to:
        return 0
    counts = labels.outcomes(body["counts"]) or "no items"
    kind = "Dry run" if job.dry_run else "Erasure"
    text = (f"{kind} job #{job.pk} on {job.connection_label} ({job.provider_label})"
            f" is now: {labels.label(labels.JOB_STATUS, job.status)}.\nItems: {counts}.\n\n"
            f"{body['link']}\n")
    return send_mail(SUBJECTS[event].format(job=job.pk), text, None, to)


def post_webhook(body: dict[str, Any], about: str) -> str:
    """POST ``body`` to LETHE_WEBHOOK_URL (signed when a secret is set); the status code, or
    "error: ..." when it could not be sent, or "" when no webhook is set. ``about`` names
    the event in the log."""
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
        log.warning("notification webhook for %s failed: %s", about, type(exc).__name__)
        return f"error: {type(exc).__name__}"
    if response.status_code >= 300:
        log.warning("notification webhook for %s answered %s", about, response.status_code)
    return str(response.status_code)
