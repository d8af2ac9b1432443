"""Telling people about new findings of the kinds LETHE_FINDINGS_NOTIFY names, by the same
e-mail and webhook as job notifications (`notify`).

A sync that found some writes a `FindingNotice` (counts by kind) in its own transaction
(`mirror.findings.announce`); a worker sends it and marks it sent; a channel that failed is
tried again later, when the sweeper asks. What is sent says how many of which kind, on
which connection, and links to the Findings screen: never a value, never message text.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from ..lib import queue
from ..models import FindingNotice
from ..models.findings import Kind
from .notify import post_webhook

log = logging.getLogger(__name__)
EVENT = "new_findings"


def payload(notice: FindingNotice) -> dict[str, Any]:
    connection = notice.connection
    return {
        "event": EVENT,
        "connection": connection.pk,
        "provider": connection.provider,
        "counts": dict(sorted(notice.counts.items())),
        "link": settings.LETHE_BASE_URL.rstrip("/") + reverse("findings") + "?"
        + urlencode({"connection": connection.pk}),
    }


def deliver(pk: int) -> FindingNotice | None:
    """Send the notice's channels still to do, holding its row so that a second worker
    sends nothing; returns it (None when another worker has it or it was sent)."""
    with transaction.atomic():
        notice = FindingNotice.objects.select_for_update(skip_locked=True).select_related(
            "connection__owner").filter(pk=pk, sent_at__isnull=True).first()
        if notice is None:
            return None
        body = payload(notice)
        problems = []
        if not notice.email_done:
            try:
                _email(notice, body)
                notice.email_done = True
            except Exception as exc:  # a mail outage must not fail the worker's task
                log.warning("findings e-mail for connection %s failed: %s",
                            notice.connection_id, type(exc).__name__)
                problems.append(f"e-mail: {type(exc).__name__}")
        if not notice.webhook_done:
            status = post_webhook(body, f"findings of connection {notice.connection_id}")
            notice.webhook_done = status == "" or status[:1] == "2"
            if not notice.webhook_done:
                problems.append(f"webhook: {status}")
        notice.attempts += 1
        now = timezone.now()
        if problems:
            notice.last_error = "; ".join(problems)[:200]
            notice.next_attempt_at = now + timedelta(
                seconds=min(3600, 30 * 2 ** notice.attempts))
        else:
            notice.sent_at, notice.last_error = now, ""
        notice.save()
    return notice


def send_due() -> int:
    """Ask workers for the notices still unsent (a lost message, a failed channel)."""
    settled = timezone.now() - timedelta(seconds=30)  # a new one's own message is on its way
    due = list(FindingNotice.objects.filter(sent_at__isnull=True).filter(
        Q(next_attempt_at__isnull=True, created_at__lt=settled)
        | Q(next_attempt_at__lte=timezone.now())).values_list("pk", flat=True)[:100])
    for pk in due:
        queue.send(queue.NOTIFY_FINDINGS, pk)
    return len(due)


def _email(notice: FindingNotice, body: dict[str, Any]) -> int:
    if not settings.LETHE_EMAIL_NOTIFICATIONS:
        return 0
    owner = notice.connection.owner
    to = list(dict.fromkeys([*settings.LETHE_NOTIFY_EMAILS, *([owner.email] if owner.email
                                                              else [])]))
    if not to:
        return 0
    labels = dict(Kind.choices)
    counts = ", ".join(f"{labels.get(kind, kind).lower()}: {n}"
                       for kind, n in body["counts"].items())
    total = sum(body["counts"].values())
    text = (f"A sync of {notice.connection.label} ({notice.connection.provider_label}) found "
            f"{total} new finding{'s' if total != 1 else ''} of secrets or personal data in "
            f"the mirrored messages ({counts}). Lethe shows them masked:\n\n{body['link']}\n")
    return send_mail(f"Lethe: {total} new finding{'s' if total != 1 else ''} on "
                     f"{notice.connection.label}", text, None, to)
