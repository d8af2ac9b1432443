"""Races found in review: a long provider call must not lose its items to the sweeper, and
a late answer must not overwrite what a cancel or another worker decided meanwhile."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection as db_connection
from django.urls import reverse

from dashboard.erasure import outcomes, sweeper, worker
from dashboard.mirror import sync
from dashboard.models import ErasureItem, ErasureJob
from providers.records import Outcome, Target
from tests.helpers import confirmed_job

State = ErasureItem.State


@pytest.mark.django_db(transaction=True)
def test_a_provider_call_longer_than_the_stuck_limit_keeps_its_items(connection, convai_fake,
                                                                     settings):
    settings.LETHE_STUCK_AFTER = 1
    assert sync.perform_sync(sync.start(connection).pk).status == "ok"
    job = confirmed_job(connection, 2)
    convai_fake.stall_next(1, seconds=3.5)  # the call outlives the stuck limit three times
    thread = threading.Thread(target=lambda: (worker.work_job(job.pk), db_connection.close()))
    thread.start()
    time.sleep(2.5)
    assert job.items.filter(state=State.IN_FLIGHT).count() == 2
    sweeper.sweep()  # the worker is alive: its items stay in flight
    assert job.items.filter(state=State.UNKNOWN).count() == 0
    thread.join(timeout=30)
    assert set(job.items.values_list("state", flat=True)) == {State.VERIFIED}
    assert set(convai_fake.deletes.values()) == {1}


@pytest.mark.django_db
def test_a_late_answer_does_not_overwrite_an_item_a_cancel_settled(synced):
    job = confirmed_job(synced, 2)
    ErasureJob.objects.filter(pk=job.pk).update(status="running")
    batch = worker.claim(job, 2)
    ErasureItem.objects.filter(pk=batch[0].pk).update(state=State.SKIPPED, detail="cancelled")
    late = [Outcome(Target("conversation", i.provider_id, i.provider_id,
                           i.character_provider_id), "failed", "late") for i in batch]
    outcomes.record(batch, late)
    first, second = (ErasureItem.objects.get(pk=i.pk) for i in batch)
    assert (first.state, first.detail) == (State.SKIPPED, "cancelled")
    assert second.state == State.FAILED


@pytest.mark.django_db
def test_the_search_text_of_a_select_all_is_not_kept_on_the_job(client, synced):
    client.force_login(synced.owner)
    word = synced.conversations.first().messages.filter(is_human=True).first().text.split()[0]
    client.post(reverse("erase_selected"), {"select_all": "1", "q": word})
    job = ErasureJob.objects.get()
    assert job.scope["filter"] == {"text_filter": True}
    assert word not in str(job.scope)


@pytest.mark.django_db
def test_forged_ids_are_a_clear_error_not_a_crash(client, synced):
    client.force_login(synced.owner)
    for field in ("conversation", "message"):
        response = client.post(reverse("erase_selected"), {field: ["9" * 30]}, follow=True)
        assert response.status_code == 200 and "not a number" in response.content.decode()
    assert client.get(reverse("search"), {"q": "ab\x00cd"}).status_code == 200
    assert not ErasureJob.objects.exists()
