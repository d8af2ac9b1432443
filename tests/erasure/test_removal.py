"""Removing a connection works whatever jobs it has: after a page saying what goes and
what stays, the key and the mirror go, drafts and unsent jobs are dropped or cancelled,
and receipts stay readable; only a job still sending or reading back holds it up."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from dashboard.erasure import lifecycle, removal, sweeper, worker
from dashboard.models import (
    AuditEvent,
    Connection,
    Conversation,
    ErasureItem,
    ErasureJob,
    Message,
    RetentionPolicy,
)
from tests.helpers import confirmed_job, draft_jobs

pytestmark = pytest.mark.django_db


def test_removal_asks_first_then_keeps_receipts_and_drops_the_rest(client, synced, settings):
    done = worker.work_job(confirmed_job(synced, 1).pk)
    draft_jobs(synced, 2)
    settings.LETHE_CANCEL_WINDOW = 600
    waiting = confirmed_job(synced, 1)  # in its cancel window: nothing sent yet
    RetentionPolicy.objects.create(name="90 days", owner=synced.owner, connection=synced)
    client.force_login(synced.owner)
    url = reverse("connection_remove", args=[synced.pk])
    page = client.get(url).content.decode()
    assert "What goes" in page and "What stays" in page and "90 days" in page
    assert f"job #{waiting.pk}" in page and "The receipts of 2 erasure jobs" in page
    assert Connection.objects.filter(pk=synced.pk).exists()  # looking removes nothing
    client.post(url)
    assert not Connection.objects.filter(pk=synced.pk).exists()
    assert not Conversation.objects.exists() and not Message.objects.exists()
    assert not RetentionPolicy.objects.exists()
    assert set(ErasureJob.objects.values_list("pk", "status")) == {
        (done.pk, "done"), (waiting.pk, "cancelled")}
    receipt = json.loads(client.get(reverse("job_receipt_json", args=[done.pk])).content)
    assert receipt["connection"] == {"id": None, "label": "Team Convai",
                                     "key_hint": synced.secret_hint}
    assert receipt["provider"] == "convai" and receipt["counts"] == {"verified": 1}
    assert "Team Convai (removed since)" in client.get(
        reverse("job", args=[done.pk])).content.decode()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONNECTION_REMOVED).exists()


def test_a_job_that_may_still_be_sending_holds_the_removal_up(client, synced):
    job = confirmed_job(synced, 2)
    ErasureJob.objects.filter(pk=job.pk).update(status=ErasureJob.Status.RUNNING)
    job.items.update(state=ErasureItem.State.IN_FLIGHT)
    client.force_login(synced.owner)
    url = reverse("connection_remove", args=[synced.pk])
    assert "may still be sending or reading back" in client.get(url).content.decode()
    client.post(url)
    assert Connection.objects.filter(pk=synced.pk).exists()
    assert Message.objects.exists()


def test_a_job_left_without_its_connection_settles_and_is_never_requeued(synced, settings):
    settings.LETHE_CANCEL_WINDOW = 600
    job = confirmed_job(synced, 2)
    ErasureJob.objects.filter(pk=job.pk).update(status=ErasureJob.Status.PAUSED)
    first = job.items.order_by("id").first()
    ErasureItem.objects.filter(pk=first.pk).update(state=ErasureItem.State.ERASED)
    removal.remove(synced, synced.owner)
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.CANCELLED and job.connection is None
    assert sweeper.sweep() == []  # nothing can be read back without the connection
    with pytest.raises(lifecycle.NotAllowed, match="removed"):
        lifecycle.retry_failed(job, synced.owner)
    # A worker that still gets it settles what is open rather than failing.
    ErasureItem.objects.filter(pk=first.pk).update(state=ErasureItem.State.UNKNOWN)
    worker.work_job(job.pk)
    assert job.items.get(pk=first.pk).state == ErasureItem.State.FAILED


def test_the_admin_cannot_delete_a_connection_past_its_jobs(client, synced, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", password="x-boss-123")
    client.force_login(boss)
    url = reverse("admin:dashboard_connection_delete", args=[synced.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert Connection.objects.filter(pk=synced.pk).exists()
