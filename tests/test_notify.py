"""Notifications: e-mail and webhook when a job finishes, fails or waits for approval; once
per event, sent by the worker after commit, never with a secret or message text, and a
failing webhook never breaks the job."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Group
from django.core import mail

from dashboard import erasure, notify, runner, tasks
from dashboard.models import ErasureJob, JobNotification, Message
from providers.fakes.convai import DEMO_KEY
from tests.conftest import with_role

pytestmark = pytest.mark.django_db


class Hook:
    """A tiny local webhook receiver: records each POST and answers `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append((dict(self.headers), body))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/t0ken"

    def payloads(self) -> list[dict[str, object]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def hook(settings) -> Iterator[Hook]:  # type: ignore[no-untyped-def]
    receiver = Hook()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    settings.LETHE_WEBHOOK_URL = receiver.url
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture(autouse=True)
def _mail_on(settings):  # type: ignore[no-untyped-def]
    settings.LETHE_EMAIL_NOTIFICATIONS = True
    settings.LETHE_BASE_URL = "https://lethe.example.com"


@pytest.fixture
def worker_sends(monkeypatch):  # type: ignore[no-untyped-def]
    """The queued task runs at once, as a worker would run it."""
    monkeypatch.setattr(tasks.notify_job, "delay", lambda pk: tasks.notify_job(pk))


def confirmed_job(connection, n: int = 2, **kwargs) -> ErasureJob:  # type: ignore[no-untyped-def]
    ids = list(connection.conversations.order_by("id").values_list("pk", flat=True)[:n])
    request = erasure.freeze(connection.owner, connection.conversations.filter(pk__in=ids), {})
    [job] = erasure.confirm(ErasureJob.objects.filter(request=request), dry_run=False,
                            enqueue=False, **kwargs)
    return job


def test_a_finished_job_is_announced_once_by_mail_and_webhook(synced, hook, worker_sends,
                                                              django_capture_on_commit_callbacks):
    synced.owner.email = "owner@example.com"
    synced.owner.save()
    job = confirmed_job(synced)
    with django_capture_on_commit_callbacks(execute=True):
        job = runner.run(job.pk)
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
    runner.run(job.pk)
    notify.deliver(job.pk)
    sent = mail.outbox[0].body + mail.outbox[0].subject + hook.received[0][1].decode()
    sent += json.dumps(hook.received[0][0])
    assert DEMO_KEY not in sent and synced.secret_hint not in sent
    assert not any(text in sent for text in texts if len(text) > 8)


def test_a_job_with_failed_items_is_announced_as_failed(synced, convai_fake, hook):
    synced.owner.email = "owner@example.com"
    synced.owner.save()
    convai_fake.plan_gated_delete = True
    job = runner.run(confirmed_job(synced).pk)
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
        job = runner.run(confirmed_job(synced).pk)
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
        job = runner.run(confirmed_job(synced).pk)
    assert job.status == ErasureJob.Status.DONE
    assert JobNotification.objects.get(job=job).webhook_status.startswith("error: ")


def test_a_retried_job_that_finishes_again_is_announced_again(synced, convai_fake, hook):
    convai_fake.plan_gated_delete = True
    job = runner.run(confirmed_job(synced).pk)
    notify.deliver(job.pk)
    convai_fake.plan_gated_delete = False
    erasure.retry_failed(job, synced.owner)
    job = runner.run(job.pk)
    notify.deliver(job.pk)
    assert [p["event"] for p in hook.payloads()] == ["failed", "finished"]
