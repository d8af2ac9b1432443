"""Lethe survives its own infrastructure, in-process: a job finishes only once verified,
resumes when the wait it recorded is over, never has more workers than it may, and what
an outage held back (notifications, a lost task message) is done later, not lost. The
outages themselves (Redis, PostgreSQL, killed workers) are staged in tests/system."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.db import connection as db_connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dashboard.erasure import notify, presence, sweeper, ticks, worker
from dashboard.models import (
    AuditEvent,
    ErasureItem,
    ErasureJob,
    ErasureLease,
    JobNotification,
)
from tests.helpers import PASSWORD, confirmed_job

State = ErasureItem.State


@pytest.mark.django_db(transaction=True)
def test_a_job_finishes_only_once_every_item_is_verified(synced, convai_fake, settings):
    settings.LETHE_ERASE_BATCH = 1
    convai_fake.latency = 0.02  # read-backs (listing sessions) take a while
    job = confirmed_job(synced, 6)
    threads = [threading.Thread(target=lambda: (worker.work_job(job.pk),
                                                db_connection.close())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.DONE
    assert job.counts()[State.VERIFIED] == 6
    finished = AuditEvent.objects.get(action=AuditEvent.Action.ERASURE_FINISHED)
    assert finished.details["outcomes"] == {"verified": 6}  # written once, and complete


@pytest.mark.django_db
def test_a_worker_ending_while_another_sends_leaves_the_read_back_to_it(synced, settings):
    """Read back once, by the worker sending last: not once per worker, each reading the
    provider's whole list and rewriting every item."""
    settings.LETHE_ERASE_BATCH = 2
    job = confirmed_job(synced, 5)
    other = job.items.order_by("id").last()
    ErasureItem.objects.filter(pk=other.pk).update(state=State.IN_FLIGHT)  # someone sends it
    job = worker.work_job(job.pk)
    assert job.status == ErasureJob.Status.RUNNING
    sent = job.items.exclude(pk=other.pk)
    assert set(sent.values_list("state", flat=True)) == {State.ERASED}
    assert not sent.filter(settled_at__isnull=False).exists()  # acknowledged, not read back
    # The other worker put its item back untouched (a 429, say): the next one to work the
    # job sends it, finds nothing more to send, and reads back everything.
    ErasureItem.objects.filter(pk=other.pk).update(state=State.PENDING, attempts=0)
    job = worker.work_job(job.pk)
    assert job.status == ErasureJob.Status.DONE
    assert job.counts()[State.VERIFIED] == 5


@pytest.mark.django_db
def test_a_failed_read_back_keeps_the_job_open_until_verified_or_given_up(synced, convai_fake,
                                                                          settings):
    settings.LETHE_VERIFY_TRIES = 2
    job = confirmed_job(synced, 1)
    job.items.update(state=State.ERASED)  # sent and acknowledged; the read-back is next
    convai_fake.fail_next(50, status=503, path="/character/chatHistory/list")
    job = worker.work_job(job.pk)
    # Sent and acknowledged, but not verified: not finished, and the wait is recorded.
    assert job.status == ErasureJob.Status.RUNNING and job.throttled_until
    assert job.items.get().state == State.ERASED
    ErasureJob.objects.filter(pk=job.pk).update(throttled_until=timezone.now())
    assert sweeper.sweep() == [job.pk]
    job = worker.work_job(job.pk)
    assert job.status == ErasureJob.Status.DONE
    item = job.items.get()
    assert item.state == State.ERASED and "failed 2 times" in item.detail


@pytest.mark.django_db
def test_a_job_never_has_more_workers_than_it_may(synced, settings):
    settings.LETHE_ERASE_WORKERS = 2
    job = confirmed_job(synced, 2)
    first, second = presence.join(job), presence.join(job)
    assert first and second and presence.join(job) is None
    # A worker that died stops counting once its lease goes stale.
    ErasureLease.objects.filter(pk=first).update(beat_at=timezone.now() - timedelta(minutes=5))
    assert presence.join(job) is not None


@pytest.mark.django_db
def test_workers_are_asked_for_again_only_when_their_message_may_be_lost(synced, convai_fake,
                                                                         monkeypatch):
    from dashboard.lib import queue

    sent: list[int] = []
    monkeypatch.setattr(queue, "dispatch", lambda task, pk, copies=1: sent.append(pk))
    job = confirmed_job(synced, 2)  # queued, not yet taken by a worker
    worker.enqueue(job.pk)
    assert sweeper.sweep() == []  # asked a moment ago: no storm of messages
    ErasureJob.objects.filter(pk=job.pk).update(queued_at=timezone.now() - timedelta(minutes=5))
    assert sweeper.sweep() == [job.pk]


@pytest.mark.django_db
def test_a_queued_job_with_nothing_left_to_send_is_finished(synced):
    job = confirmed_job(synced, 2)
    job.items.update(state=State.SKIPPED, settled_at=timezone.now())
    sweeper.sweep()
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.DONE


@pytest.mark.django_db
def test_a_notification_held_back_by_an_outage_is_sent_later(synced, settings, monkeypatch):
    settings.LETHE_WEBHOOK_URL = "http://127.0.0.1:9/hook"  # nobody answers there
    job = worker.work_job(confirmed_job(synced, 1).pk)
    notify.deliver(job.pk)
    note = JobNotification.objects.get(job=job)
    assert note.sent_at is None and note.next_attempt_at and "webhook" in note.last_error
    received: list[dict[str, object]] = []
    monkeypatch.setattr(notify, "post_webhook",
                        lambda body, about: received.append(body) or "204")
    JobNotification.objects.filter(pk=note.pk).update(next_attempt_at=timezone.now())
    assert notify.send_due() == 1  # the sweeper asks a worker for it...
    notify.deliver(job.pk)  # ...which sends it
    note.refresh_from_db()
    assert note.sent_at and received and received[0]["event"] == "finished"


@pytest.mark.django_db
def test_two_beats_count_as_one(settings):
    assert ticks.take("sweep", 5)
    assert not ticks.take("sweep", 5)  # the second beat's tick, moments later
    from dashboard.models import Tick

    Tick.objects.filter(name="sweep").update(last_at=timezone.now() - timedelta(seconds=5))
    assert ticks.take("sweep", 5)


@pytest.mark.django_db
def test_sign_in_works_and_locks_out_while_the_cache_is_away(client, owner, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:9/0"}}
    settings.LETHE_LOGIN_MAX_FAILURES = 2
    assert client.post(reverse("login"), {"username": "owner", "password": PASSWORD}
                       ).status_code == 302
    other = Client()
    for _ in range(2):
        other.post(reverse("login"), {"username": "owner", "password": "wrong"})
    page = other.post(reverse("login"), {"username": "owner", "password": PASSWORD})
    assert "Too many failed sign-ins" in page.content.decode()


@pytest.mark.django_db
def test_healthz_answers_without_touching_the_session(client, django_assert_num_queries):
    client.cookies["sessionid"] = "some-session-that-would-need-the-database"
    with django_assert_num_queries(0):
        assert client.get("/healthz").content == b"ok"


def test_a_database_outage_is_a_plain_503_not_a_500(rf):
    from dashboard.errors import unavailable_or_error

    try:
        raise OperationalError("could not connect to server")
    except OperationalError:
        response = unavailable_or_error(rf.get("/"))
    assert response.status_code == 503 and b"database is unavailable" in response.content


@pytest.mark.django_db
def test_an_unreachable_provider_is_called_unreachable_not_a_request_to_wait(synced):
    job = confirmed_job(synced, 1)
    synced.options = {"base_url": "http://127.0.0.1:9"}  # nothing listens: refused at once
    synced.save()
    job = worker.work_job(job.pk)
    assert job.status == ErasureJob.Status.RUNNING and job.throttled_until
    assert "could not be reached" in job.last_error
    assert "asked us to wait" not in job.last_error
    assert job.last_error.count("Convai") == 1
    assert job.items.get().state == State.PENDING  # nothing was sent: nothing to doubt
    page = Client()
    page.force_login(synced.owner)
    text = page.get(reverse("job", args=[job.pk])).content.decode()
    assert "could not be reached" in text and "asked us to wait" not in text
