"""An item is in one unfinished job at most: confirming and retrying are where a job books
its items, under the connection's lock, so two drafts, two tabs or two people cannot send
the same item twice."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dashboard.erasure import freeze, lifecycle, worker
from dashboard.models import ErasureItem, ErasureJob
from tests.helpers import confirmed_job, draft_jobs, shown

pytestmark = pytest.mark.django_db
State = ErasureItem.State


def test_two_drafts_of_the_same_selection_cannot_both_send_it(synced, convai_fake, settings):
    settings.LETHE_CANCEL_WINDOW = 600
    first, second = draft_jobs(synced, 2), draft_jobs(synced, 2)
    [job] = lifecycle.confirm(first, dry_run=False, enqueue=False, expected=2)
    with pytest.raises(freeze.SelectionError, match="Nothing would be sent"):
        lifecycle.confirm(second, dry_run=False, enqueue=False, expected=2)
    [other] = second
    other.refresh_from_db()
    assert other.status == ErasureJob.Status.DRAFT  # nothing confirmed...
    # ...but what it found held is recorded, so its preview says so from now on.
    assert set(other.items.values_list("detail", flat=True)) == {f"{freeze.HELD}{job.pk}"}


def test_a_draft_that_lost_some_items_meanwhile_asks_again(client, synced, settings):
    settings.LETHE_CANCEL_WINDOW = 600
    [late] = draft_jobs(synced, 3)
    confirmed_job(synced, 1)  # someone else books the first conversation
    client.force_login(synced.owner)
    url = reverse("erase_preview", args=[late.request])
    response = client.post(url, {"mode": "erase", **shown(3)})
    late.refresh_from_db()
    assert late.status == ErasureJob.Status.DRAFT
    page = client.get(response["Location"]).content.decode()
    assert "The numbers changed" in page and "Erase 2 at the provider" in page
    client.post(url, {"mode": "erase", **shown(2)})
    late.refresh_from_db()
    assert late.status == ErasureJob.Status.SCHEDULED


def test_a_second_click_on_confirm_is_not_an_error(client, synced):
    [draft] = draft_jobs(synced, 1)
    client.force_login(synced.owner)
    url = reverse("erase_preview", args=[draft.request])
    assert client.post(url, {"mode": "dry_run", **shown(1)}).status_code == 302
    assert client.post(url, {"mode": "dry_run", **shown(1)}).status_code == 302
    assert ErasureJob.objects.get().status != ErasureJob.Status.DRAFT


def test_retrying_skips_what_another_job_took_since(synced, convai_fake, settings):
    convai_fake.plan_gated_delete = True
    failed = worker.work_job(confirmed_job(synced, 2).pk)
    assert set(failed.items.values_list("state", flat=True)) == {State.FAILED}
    convai_fake.plan_gated_delete = False
    settings.LETHE_CANCEL_WINDOW = 600
    taken = confirmed_job(synced, 1)  # a new job takes the first conversation again
    assert lifecycle.retry_failed(failed, synced.owner) == 1
    states = dict(failed.items.values_list("conversation_id", "detail"))
    first = synced.conversations.order_by("id").first()
    assert states[first.pk] == f"{freeze.HELD}{taken.pk}"
    failed = worker.work_job(failed.pk)
    assert list(convai_fake.deletes.values()) == [1]  # only the other one went
