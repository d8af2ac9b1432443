"""The queued path through a real Celery worker: the pages only enqueue ids, the worker does
the work, and job state lives in our tables."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dashboard.models import ErasureItem, ErasureJob, SyncRun
from tests.helpers import shown, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_sync_and_erasure_run_in_the_worker(client, owner, connection, convai_fake,
                                            celery_worker):
    client.force_login(owner)
    client.post(reverse("connection_sync", args=[connection.pk]))
    run = wait_for(lambda: SyncRun.objects.filter(connection=connection, status="ok").first(),
                   what="the worker to finish the sync")
    assert run.conversations == 12

    ids = list(connection.conversations.order_by("id").values_list("pk", flat=True)[:3])
    preview = client.post(reverse("erase_selected"), {"conversation": ids})
    client.post(preview["Location"], {"mode": "erase", "typed_count": "3", **shown(3)})
    job = ErasureJob.objects.get()
    done = wait_for(lambda: ErasureJob.objects.filter(pk=job.pk, status="done").first(),
                    what="the worker to finish the job")
    assert done.counts()[ErasureItem.State.VERIFIED] == 3
    erased = set(connection.conversations.filter(pk__in=ids).values_list("provider_id", flat=True))
    assert set(convai_fake.deletes) == erased

