"""Notifications: e-mail and webhook when a job finishes, fails or waits for approval; once
per event, sent by the worker after commit, never with a secret or message text, and a
failing webhook never breaks the job."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.core import mail

from dashboard import tasks
from dashboard.erasure import lifecycle, notify, worker
from dashboard.lib import queue
from dashboard.models import ErasureJob, JobNotification, Message
from providers.fakes.convai import DEMO_KEY
from tests.helpers import Hook, confirmed_job, with_role

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _mail_on(settings):  # type: ignore[no-untyped-def]
    settings.LETHE_EMAIL_NOTIFICATIONS = True
    settings.LETHE_BASE_URL = "https://lethe.example.com"


@pytest.fixture
def worker_sends(monkeypatch):  # type: ignore[no-untyped-def]
    """The queued notification runs at once, as a worker would run it."""
    def run(task: str, pk: int, copies: int = 1) -> None:
        if task == queue.NOTIFY:
            tasks.notify_job(pk)

    monkeypatch.setattr(queue, "dispatch", run)


def test_a_finished_job_is_announced_once_by_mail_and_webhook(synced, hook, worker_sends,
                                                              django_capture_on_commit_callbacks):
    synced.owner.email = "owner@example.com"
    synced.owner.save()
    job = confirmed_job(synced)
    with django_capture_on_commit_callbacks(execute=True):
        job = worker.work_job(job.pk)
    assert job.status == ErasureJob.Status.DONE
    assert [m.to for m in mail.outbox] == [["owner@example.com"]]
    assert f"https://lethe.example.com/jobs/{job.pk}/" in mail.outbox[0].body
    [payload] = hook.payloads()
    assert payload == {"event": "finished", "job": job.pk, "request": str(job.request),
                       "status": "done", "dry_run": False, "provider": "convai",
                       "connection": synced.pk, "counts": {"verified": 2},
                       "link": f"https://lethe.example.com/jobs/{job.pk}/"}
    # A redelivered task, or a second worker, sends nothing more.
    tasks.notify_job(job.pk)
    notify.deliver(job.pk)
    assert len(mail.outbox) == 1 and len(hook.received) == 1
    assert JobNotification.objects.get().webhook_status == "204"


def test_notifications_hold_no_secret_and_no_message_text(synced, hook, worker_sends):
    synced.owner.email = "owner@example.com"
    synced.owner.save()
    job = confirmed_job(synced)
    texts = list(Message.objects.filter(conversation__erasure_items__job=job)
                 .values_list("text", flat=True))
    worker.work_job(job.pk)
    notify.deliver(job.pk)
    sent = mail.outbox[0].body + mail.outbox[0].subject + hook.received[0][1].decode()
    sent += json.dumps(hook.received[0][0])
    assert DEMO_KEY not in sent and synced.secret_hint not in sent
    assert not any(text in sent for text in texts if len(text) > 8)


def test_a_job_with_failed_items_is_announced_as_failed(synced, convai_fake, hook):
    synced.owner.email = "owner@example.com"
    synced.owner.save()
    convai_fake.plan_gated_delete = True
    job = worker.work_job(confirmed_job(synced).pk)
    notify.deliver(job.pk)
    assert hook.payloads()[0]["event"] == "failed"
    assert hook.payloads()[0]["counts"] == {"failed": 2}
    assert "with failures" in mail.outbox[0].subject


def test_waiting_for_approval_mails_the_approvers_who_can_see_the_connection(
        synced, django_user_model, settings, worker_sends, django_capture_on_commit_callbacks):
    settings.LETHE_APPROVAL_ALL = True
    team = Group.objects.create(name="support")
    synced.shared_with.add(team)
    approver = with_role(django_user_model.objects.create_user(
        "approver", email="approver@example.com"), "approver")
    approver.groups.add(team)
    with_role(django_user_model.objects.create_user("far", email="far@example.com"),
              "approver")  # an approver without access to this connection
    with_role(django_user_model.objects.create_user("viewer", email="viewer@example.com"),
              "viewer").groups.add(team)
    synced.owner.email = "owner@example.com"
    synced.owner.save()
    with django_capture_on_commit_callbacks(execute=True):
        job = confirmed_job(synced)
    assert job.status == ErasureJob.Status.AWAITING_APPROVAL
    assert [m.to for m in mail.outbox] == [["approver@example.com"]]
    assert "waits for your approval" in mail.outbox[0].subject


def test_a_failing_webhook_never_breaks_the_job(synced, hook, worker_sends,
                                               django_capture_on_commit_callbacks):
    hook.status = 500
    with django_capture_on_commit_callbacks(execute=True):
        job = worker.work_job(confirmed_job(synced).pk)
    assert job.status == ErasureJob.Status.DONE
    assert JobNotification.objects.get(job=job).webhook_status == "500"


def test_an_unreachable_webhook_is_recorded_and_the_job_still_finishes(synced, settings,
                                                                      worker_sends,
                                                                      django_capture_on_commit_callbacks):
    dead = Hook()
    dead.server.server_close()  # nothing listens there any more
    settings.LETHE_WEBHOOK_URL = dead.url
    settings.LETHE_WEBHOOK_TIMEOUT = 2
    with django_capture_on_commit_callbacks(execute=True):
        job = worker.work_job(confirmed_job(synced).pk)
    assert job.status == ErasureJob.Status.DONE
    assert JobNotification.objects.get(job=job).webhook_status.startswith("error: ")


def test_a_retried_job_that_finishes_again_is_announced_again(synced, convai_fake, hook):
    convai_fake.plan_gated_delete = True
    job = worker.work_job(confirmed_job(synced).pk)
    notify.deliver(job.pk)
    convai_fake.plan_gated_delete = False
    lifecycle.retry_failed(job, synced.owner)
    job = worker.work_job(job.pk)
    notify.deliver(job.pk)
    assert [p["event"] for p in hook.payloads()] == ["failed", "finished"]
