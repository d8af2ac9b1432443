"""New findings of a chosen kind are announced by e-mail and webhook, once, after the
sync commits, with counts and a link and never a value; a failed channel is tried again."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.utils import timezone

from dashboard import tasks
from dashboard.erasure import finding_alerts
from dashboard.lib import queue
from dashboard.models import FindingNotice
from providers.fakes.planted import PLANTED
from tests.helpers import connect, sync_now

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _notify_secrets_and_cards(settings, monkeypatch):  # type: ignore[no-untyped-def]
    settings.LETHE_FINDINGS_NOTIFY = ["secret", "card"]
    settings.LETHE_EMAIL_NOTIFICATIONS = True
    settings.LETHE_BASE_URL = "https://lethe.example.com"

    def run(task: str, pk: int, copies: int = 1) -> None:  # a worker, at once
        if task == queue.NOTIFY_FINDINGS:
            tasks.notify_findings(pk)

    monkeypatch.setattr(queue, "dispatch", run)


def synced_with_findings(owner, fake, capture) -> None:  # type: ignore[no-untyped-def]
    owner.email = "owner@example.com"
    owner.save()
    with fake.serve() as server, capture(execute=True):
        sync_now(connect(owner, fake, server.url))


def test_new_findings_of_the_chosen_kinds_are_announced_once_without_a_value(
        owner, planted, planted_fake, hook, django_capture_on_commit_callbacks):
    synced_with_findings(owner, planted_fake, django_capture_on_commit_callbacks)
    [notice] = FindingNotice.objects.all()
    assert notice.counts == {"secret": 1, "card": 1} and notice.sent_at
    [payload] = hook.payloads()
    assert payload == {"event": "new_findings", "connection": notice.connection_id,
                       "provider": "characterai", "counts": {"card": 1, "secret": 1},
                       "link": "https://lethe.example.com/findings/?connection="
                               f"{notice.connection_id}"}
    [message] = mail.outbox
    assert message.to == ["owner@example.com"] and "2 new findings" in message.subject
    sent = message.subject + message.body + json.dumps(hook.received[0][0]) + \
        hook.received[0][1].decode()
    assert not [value for value, _ in PLANTED.values() if value in sent]
    # A resync finds nothing new: nothing more is said.
    with planted_fake.serve() as server:
        connection = notice.connection
        connection.options = planted_fake.client_config(server.url)[1]
        connection.save()
        with django_capture_on_commit_callbacks(execute=True):
            sync_now(connection)
    assert FindingNotice.objects.count() == 1 and len(hook.received) == 1


def test_kinds_nobody_asked_for_are_not_announced(owner, planted, planted_fake, settings,
                                                  hook, django_capture_on_commit_callbacks):
    settings.LETHE_FINDINGS_NOTIFY = ["iban"]
    synced_with_findings(owner, planted_fake, django_capture_on_commit_callbacks)
    assert FindingNotice.objects.get().counts == {"iban": 1}
    assert [p["counts"] for p in hook.payloads()] == [{"iban": 1}]


def test_a_failed_webhook_is_tried_again_until_it_is_sent(
        owner, planted, planted_fake, hook, django_capture_on_commit_callbacks):
    hook.status = 500
    synced_with_findings(owner, planted_fake, django_capture_on_commit_callbacks)
    notice = FindingNotice.objects.get()
    assert notice.sent_at is None and "webhook: 500" in notice.last_error
    assert notice.email_done and len(mail.outbox) == 1
    hook.status = 204
    FindingNotice.objects.filter(pk=notice.pk).update(next_attempt_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert finding_alerts.send_due() == 1
    notice.refresh_from_db()
    assert notice.sent_at and len(hook.received) == 2 and len(mail.outbox) == 1
