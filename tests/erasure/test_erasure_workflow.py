"""The erasure workflow around the worker: approval, cancel window, keep-list, pinned
messages, pause/resume/cancel, retry and skip, export hash, receipts, the sweeper."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard.erasure import freeze, lifecycle, sweeper, worker
from dashboard.lib import queue
from dashboard.models import Conversation, ErasureItem, ErasureJob, ErasureLease, Message
from tests.helpers import draft_jobs, share, with_role

pytestmark = pytest.mark.django_db
State = ErasureItem.State


@pytest.fixture
def approver(django_user_model, synced):  # type: ignore[no-untyped-def]
    """An approver who can see the connection (nobody approves what they cannot see)."""
    person = django_user_model.objects.create_user("approver", password="x-appr-123")
    share(synced, person)
    return with_role(person, "approver")


def test_large_jobs_wait_for_an_approver_who_is_not_the_requester(synced, approver, settings,
                                                                   convai_fake):
    settings.LETHE_APPROVAL_THRESHOLD = 1
    [job] = lifecycle.confirm(draft_jobs(synced), dry_run=False, enqueue=False)
    assert job.status == ErasureJob.Status.AWAITING_APPROVAL
    worker.work_job(job.pk)
    assert not convai_fake.deletes  # nothing is sent while it waits
    with pytest.raises(lifecycle.NotAllowed, match="another approver"):
        lifecycle.approve(job, synced.owner)
    job = lifecycle.approve(job, approver, enqueue=False)
    assert job.status == ErasureJob.Status.QUEUED and job.approved_by == approver
    assert worker.work_job(job.pk).status == ErasureJob.Status.DONE


def test_someone_without_the_approver_role_cannot_approve(synced, outsider, settings):
    settings.LETHE_APPROVAL_ALL = True
    [job] = lifecycle.confirm(draft_jobs(synced), dry_run=False, enqueue=False)
    with pytest.raises(lifecycle.NotAllowed, match="approver role"):
        lifecycle.approve(job, outsider)


def test_the_cancel_window_holds_the_job_and_a_cancel_sends_nothing(synced, settings,
                                                                     convai_fake):
    settings.LETHE_CANCEL_WINDOW = 60
    [job] = lifecycle.confirm(draft_jobs(synced, 3), dry_run=False, enqueue=False)
    assert job.status == ErasureJob.Status.SCHEDULED
    assert job.not_before > timezone.now() + timedelta(seconds=50)
    worker.work_job(job.pk)
    assert sweeper.sweep() == []  # the window is not over
    job = lifecycle.cancel(job, synced.owner)
    assert job.status == ErasureJob.Status.CANCELLED
    assert set(job.items.values_list("state", flat=True)) == {State.SKIPPED}
    worker.work_job(job.pk)
    assert not convai_fake.deletes


def test_the_sweeper_releases_a_job_when_its_window_is_over(synced, settings):
    settings.LETHE_CANCEL_WINDOW = 60
    [job] = lifecycle.confirm(draft_jobs(synced), dry_run=False, enqueue=False)
    ErasureJob.objects.filter(pk=job.pk).update(not_before=timezone.now() - timedelta(seconds=1))
    assert sweeper.sweep() == [job.pk]
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.QUEUED


def test_protected_conversations_are_skipped_with_the_reason(synced, convai_fake):
    first = synced.conversations.order_by("id").first()
    Conversation.objects.filter(pk=first.pk).update(protected=True)
    [job] = lifecycle.confirm(draft_jobs(synced, 2), dry_run=False, enqueue=False)
    job = worker.work_job(job.pk)
    skipped = job.items.get(conversation=first)
    assert skipped.state == State.SKIPPED and "keep-list" in skipped.detail
    assert first.provider_id not in convai_fake.deletes
    assert job.items.exclude(pk=skipped.pk).get().state == State.VERIFIED


def test_a_conversation_put_on_the_keep_list_after_the_freeze_is_not_sent(synced, convai_fake):
    first, second, third = synced.conversations.order_by("id")[:3]
    [draft] = draft_jobs(synced, 3)
    Conversation.objects.filter(pk=first.pk).update(protected=True)  # before confirming
    [job] = lifecycle.confirm([draft], dry_run=False, enqueue=False)
    assert job.items.get(conversation=first).state == State.SKIPPED
    Conversation.objects.filter(pk=second.pk).update(protected=True)  # in the cancel window
    job = worker.work_job(job.pk)
    for kept in (first, second):
        item = job.items.get(conversation=kept)
        assert item.state == State.SKIPPED and "keep-list" in item.detail
        assert kept.provider_id not in convai_fake.deletes
    assert job.items.get(conversation=third).state == State.VERIFIED


def test_the_preview_total_no_longer_holds_once_one_is_put_on_the_keep_list(synced):
    """Invariant 10: confirming against the total the preview showed is refused, with the
    reason, when a conversation was protected since; nothing is confirmed."""
    [draft] = draft_jobs(synced, 3)
    Conversation.objects.filter(pk=synced.conversations.order_by("id")[0].pk).update(
        protected=True)
    with pytest.raises(freeze.SelectionError, match="3 then, 2 now.*keep-list"):
        lifecycle.confirm([draft], dry_run=False, enqueue=False, expected=3)
    draft.refresh_from_db()
    assert draft.status == ErasureJob.Status.DRAFT


def test_everything_put_on_the_keep_list_after_the_freeze_leaves_nothing_to_send(synced):
    [draft] = draft_jobs(synced, 2)
    synced.conversations.update(protected=True)
    with pytest.raises(freeze.SelectionError, match="Nothing would be sent"):
        lifecycle.confirm([draft], dry_run=False, enqueue=False)


def test_a_session_holding_pinned_messages_goes_only_if_they_are_included(synced, convai_fake):
    # Convai erases whole sessions only: keeping a pinned message keeps its session.
    first = synced.conversations.order_by("id").first()
    Message.objects.filter(conversation=first, position=0).update(pinned=True)
    with pytest.raises(freeze.SelectionError, match="unless pinned messages are included"):
        lifecycle.confirm(draft_jobs(synced, 1), dry_run=False, enqueue=False)
    assert not convai_fake.deletes
    [job] = lifecycle.confirm(draft_jobs(synced, 1), dry_run=False, include_pinned=True,
                              enqueue=False)
    assert worker.work_job(job.pk).items.get().state == State.VERIFIED


def test_pause_stops_before_the_next_batch_and_resume_finishes(synced, convai_fake, settings):
    settings.LETHE_ERASE_BATCH = 1
    [job] = lifecycle.confirm(draft_jobs(synced, 3), dry_run=False, enqueue=False)
    job = lifecycle.pause(job, synced.owner)
    assert worker.work_job(job.pk).status == ErasureJob.Status.PAUSED
    assert not convai_fake.deletes
    lifecycle.resume(job, synced.owner)
    assert worker.work_job(job.pk).status == ErasureJob.Status.DONE
    assert len(convai_fake.deletes) == 3


def test_failed_items_can_be_retried_or_skipped_in_bulk(synced, convai_fake):
    convai_fake.plan_gated_delete = True
    [job] = lifecycle.confirm(draft_jobs(synced, 2), dry_run=False, enqueue=False)
    job = worker.work_job(job.pk)
    assert job.counts()[State.FAILED] == 2 and job.status == ErasureJob.Status.DONE
    convai_fake.plan_gated_delete = False
    assert lifecycle.retry_failed(job, synced.owner) == 2
    job = worker.work_job(job.pk)
    assert job.counts()[State.VERIFIED] == 2
    convai_fake.plan_gated_delete = True
    [other] = lifecycle.confirm(draft_jobs(synced, 4), dry_run=False, enqueue=False)
    other = worker.work_job(other.pk)
    assert other.counts()[State.FAILED] == 4
    assert lifecycle.skip_failed(other, synced.owner) == 4
    assert other.counts()[State.FAILED] == 0 and other.counts()[State.SKIPPED] == 4


def test_a_refused_key_pauses_and_a_replaced_key_resumes(client, synced, convai_fake):
    [job] = lifecycle.confirm(draft_jobs(synced), dry_run=False, enqueue=False)
    synced.set_secrets({"api_key": "revoked-000000000000000000"})
    synced.save()
    job = worker.work_job(job.pk)
    assert job.status == ErasureJob.Status.PAUSED and job.paused_for_auth
    client.force_login(synced.owner)
    client.post(reverse("connection_edit", args=[synced.pk]), {
        "label": synced.label, "secret_api_key": sorted(convai_fake.api_keys)[0],
        "option_base_url": synced.options["base_url"],
    })
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.QUEUED
    assert worker.work_job(job.pk).status == ErasureJob.Status.DONE


def test_a_long_retry_after_is_kept_on_the_items_and_the_sweeper_resumes(synced, convai_fake):
    convai_fake.retry_after = 120
    convai_fake.fail_next(1, status=429, path="/character/chatHistory/delete")
    [job] = lifecycle.confirm(draft_jobs(synced), dry_run=False, enqueue=False)
    job = worker.work_job(job.pk)
    assert job.status == ErasureJob.Status.RUNNING and job.throttled_until
    assert job.items.filter(state=State.PENDING, next_attempt_at__isnull=False).count() == 2
    assert "asked us to wait until" in job.last_error
    assert sweeper.sweep() == []  # not due yet
    # The wait the worker recorded is over: the next sweep brings the job back at once.
    job.items.update(next_attempt_at=timezone.now())
    ErasureJob.objects.filter(pk=job.pk).update(throttled_until=timezone.now())
    assert sweeper.sweep() == [job.pk]
    assert worker.work_job(job.pk).status == ErasureJob.Status.DONE


@pytest.mark.parametrize("asked", [float("inf"), 1e12])
def test_a_retry_after_of_forever_pauses_the_job_for_a_day(synced, convai_fake, asked):
    """Sent as "inf" or "1e+12": taken as a day (then asked again), the items kept, not
    in flight, and the wait said with its date."""
    convai_fake.retry_after = asked
    convai_fake.fail_next(1, status=429, path="/character/chatHistory/delete")
    [job] = lifecycle.confirm(draft_jobs(synced), dry_run=False, enqueue=False)
    job = worker.work_job(job.pk)
    tomorrow = timezone.now() + timedelta(days=1)
    assert job.throttled_until and abs(job.throttled_until - tomorrow) < timedelta(minutes=1)
    assert job.items.filter(state=State.PENDING).count() == 2
    assert f"asked us to wait until {tomorrow:%Y-%m-%d}" in job.last_error


def test_the_sweeper_settles_items_whose_worker_died_in_flight(synced, convai_fake):
    [job] = lifecycle.confirm(draft_jobs(synced, 2), dry_run=False, enqueue=False)
    ErasureJob.objects.filter(pk=job.pk).update(status="running")
    claimed = worker.claim(job, 2)  # a worker took them, sent them, then died
    with convai_fake.lock:  # the deletes reached the provider
        for item in claimed:
            for char in convai_fake.characters.values():
                char.sessions.pop(item.provider_id, None)
    old = timezone.now() - timedelta(hours=1)
    ErasureItem.objects.filter(job=job).update(updated_at=old)
    ErasureJob.objects.filter(pk=job.pk).update(status="running", heartbeat_at=old)
    assert sweeper.sweep() == [job.pk]
    assert set(job.items.values_list("state", flat=True)) == {State.UNKNOWN}
    job = worker.work_job(job.pk)
    assert set(job.items.values_list("state", flat=True)) == {State.VERIFIED}
    assert not convai_fake.deletes  # read back as gone: never sent again


def test_a_confirmed_job_is_queued_for_several_workers_at_once(synced, settings, monkeypatch,
                                                               django_capture_on_commit_callbacks):
    settings.LETHE_ERASE_WORKERS = 3
    queued: list[int] = []
    monkeypatch.setattr(queue, "dispatch", lambda task, pk, copies=1: queued.extend(
        [pk] * copies if task == queue.ERASE else []))
    with django_capture_on_commit_callbacks(execute=True):
        [job] = lifecycle.confirm(draft_jobs(synced, 2), dry_run=False)
    assert queued == [job.pk] * 3


def test_a_cancelled_job_still_verifies_what_was_acknowledged(synced, convai_fake):
    # One batch went and was acknowledged; then the provider asked for a long wait, and
    # during it someone cancelled the rest.
    [job] = lifecycle.confirm(draft_jobs(synced, 2), dry_run=False, enqueue=False)
    job = worker.work_job(job.pk)
    first, second = job.items.order_by("id")
    ErasureItem.objects.filter(pk=first.pk).update(state=State.ERASED, settled_at=None)
    ErasureItem.objects.filter(pk=second.pk).update(state=State.PENDING, settled_at=None)
    ErasureJob.objects.filter(pk=job.pk).update(status="cancelled")
    assert sweeper.sweep() == [job.pk]
    worker.work_job(job.pk)
    first.refresh_from_db()
    assert first.state == State.VERIFIED
    assert sweeper.sweep() == []  # nothing left to read back


def test_the_sweeper_leaves_a_job_to_the_worker_still_reading_it_back(synced, convai_fake):
    [job] = lifecycle.confirm(draft_jobs(synced, 2), dry_run=False, enqueue=False)
    job.items.update(state=State.ERASED)  # sent and acknowledged, the read-back under way
    with convai_fake.lock:
        for item in job.items.all():
            for char in convai_fake.characters.values():
                char.sessions.pop(item.provider_id, None)
    ErasureJob.objects.filter(pk=job.pk).update(status="running")
    lease = ErasureLease.objects.create(job=job, beat_at=timezone.now())
    assert sweeper.sweep() == []
    assert ErasureJob.objects.get(pk=job.pk).status == ErasureJob.Status.RUNNING
    # That worker died: the job is not finished with its items unverified, but queued again,
    # and the next worker verifies them.
    ErasureLease.objects.filter(pk=lease.pk).update(beat_at=timezone.now() - timedelta(hours=1))
    assert sweeper.sweep() == [job.pk]
    assert ErasureJob.objects.get(pk=job.pk).status == ErasureJob.Status.RUNNING
    job = worker.work_job(job.pk)
    assert job.status == ErasureJob.Status.DONE
    assert set(job.items.values_list("state", flat=True)) == {State.VERIFIED}


def test_export_before_erase_records_the_hash_of_what_was_downloaded(client, synced):
    jobs = draft_jobs(synced, 2)
    client.force_login(synced.owner)
    response = client.get(reverse("erase_export", args=[jobs[0].request, "jsonl"]))
    body = b"".join(response.streaming_content)
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert len({line["conversation_id"] for line in lines}) == 2
    job = ErasureJob.objects.get(pk=jobs[0].pk)
    assert job.export_sha256 == hashlib.sha256(body).hexdigest()
    page = client.get(reverse("erase_preview", args=[job.request])).content.decode()
    assert "Nothing was exported" not in page
    csv_body = b"".join(client.get(reverse("erase_export", args=[job.request, "csv"]))
                        .streaming_content)
    assert csv_body.startswith(b"provider,connection,character")
    assert client.get(reverse("erase_export", args=[job.request, "exe"])).status_code == 404


def test_the_receipt_lists_every_item_without_secrets_or_text(client, synced):
    [job] = lifecycle.confirm(draft_jobs(synced, 2), dry_run=False, enqueue=False)
    texts = [t for t in Message.objects.filter(conversation__connection=synced).values_list(
        "text", flat=True) if t]
    job = worker.work_job(job.pk)
    client.force_login(synced.owner)
    data = json.loads(client.get(reverse("job_receipt_json", args=[job.pk])).content)
    assert [i["outcome"] for i in data["items"]] == ["verified", "verified"]
    assert data["requested_by"] == "owner" and data["counts"] == {"verified": 2}
    dumped = json.dumps(data)
    assert synced.get_secrets()["api_key"] not in dumped
    for text in texts:
        assert text not in dumped
    assert "Receipt for job" in client.get(reverse("job_receipt", args=[job.pk])).content.decode()


def test_job_page_actions_follow_the_state_machine(client, synced, settings):
    settings.LETHE_CANCEL_WINDOW = 60
    [job] = lifecycle.confirm(draft_jobs(synced), dry_run=False, enqueue=False)
    client.force_login(synced.owner)
    page = client.get(reverse("job", args=[job.pk])).content.decode()
    assert "Starts in" in page and "Cancel job" in page and "Pause" not in page
    response = client.post(reverse("job_action", args=[job.pk, "resume"]), follow=True)
    assert "A job that is scheduled cannot be resumed." in response.content.decode()
    client.post(reverse("job_action", args=[job.pk, "cancel"]))
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.CANCELLED and job.cancelled_by == synced.owner
    assert client.post(reverse("job_action", args=[job.pk, "explode"])).status_code == 404


def test_an_acknowledged_item_the_provider_still_returns_is_reported_as_such(synced,
                                                                              convai_fake):
    [job] = lifecycle.confirm(draft_jobs(synced, 2), dry_run=False, enqueue=False)
    # The provider said yes to both, but one is still there on the read-back.
    ErasureJob.objects.filter(pk=job.pk).update(status="running")
    job.items.update(state=State.ERASED)
    gone = job.items.order_by("id").first()
    with convai_fake.lock:
        for char in convai_fake.characters.values():
            char.sessions.pop(gone.provider_id, None)
    job = worker.work_job(job.pk)
    assert dict((i.provider_id, i.state) for i in job.items.all()) == {
        gone.provider_id: State.VERIFIED,
        job.items.exclude(pk=gone.pk).get().provider_id: State.STILL_THERE,
    }
    assert "still returns it" in job.items.get(state=State.STILL_THERE).detail
    assert lifecycle.retry_failed(job, synced.owner) == 1
    job = worker.work_job(job.pk)
    assert job.counts()[State.VERIFIED] == 2
