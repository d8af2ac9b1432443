"""Erasure jobs against the Convai fake over real HTTP: frozen selections, acknowledged and
verified outcomes, uncertain answers read back, no second delete, nothing lost."""

from __future__ import annotations

import pytest

from dashboard.erasure import freeze, lifecycle, worker
from dashboard.mirror import sync
from dashboard.models import Connection, Conversation, ErasureItem, ErasureJob

pytestmark = pytest.mark.django_db
State = ErasureItem.State


def freeze_and_confirm(connection: Connection, provider_ids: list[str],
                       dry_run: bool = False) -> ErasureJob:
    chosen = connection.conversations.filter(provider_id__in=provider_ids)
    request = freeze.conversations(connection.owner, chosen, {"selected": len(provider_ids)})
    jobs = list(ErasureJob.objects.filter(request=request))
    return lifecycle.confirm(jobs, dry_run=dry_run, enqueue=False)[0]


def fake_has(fake, session_id: str) -> bool:
    return any(session_id in fake.session_ids(c) for c in fake.character_ids())


def some_sessions(connection: Connection, n: int) -> list[str]:
    return list(connection.conversations.order_by("id").values_list("provider_id", flat=True)[:n])


def test_erase_deletes_at_the_provider_verifies_and_marks_the_mirror(synced, convai_fake):
    targets = some_sessions(synced, 3)
    job = worker.work_job(freeze_and_confirm(synced, targets).pk)
    assert job.status == ErasureJob.Status.DONE
    assert set(job.items.values_list("state", flat=True)) == {State.VERIFIED}
    assert not any(fake_has(convai_fake, s) for s in targets)
    assert all(convai_fake.deletes[s] == 1 for s in targets)
    erased = synced.conversations.filter(provider_id__in=targets)
    assert set(erased.values_list("mirror_state", flat=True)) == {"erased"}
    # The mirror keeps the rows (marked), and untouched sessions stay present at the provider.
    others = synced.conversations.exclude(provider_id__in=targets)
    assert all(fake_has(convai_fake, s) for s in others.values_list("provider_id", flat=True))


def test_dry_run_sends_nothing_and_says_what_would_go(synced, convai_fake):
    targets = some_sessions(synced, 2)
    job = worker.work_job(freeze_and_confirm(synced, targets, dry_run=True).pk)
    assert job.status == ErasureJob.Status.DONE
    assert set(job.items.values_list("state", flat=True)) == {State.WOULD_ERASE}
    assert convai_fake.count("POST", "/character/chatHistory/delete") == 0
    assert all(fake_has(convai_fake, s) for s in targets)


def test_a_later_sync_never_widens_a_frozen_job(synced, convai_fake):
    targets = some_sessions(synced, 2)
    job = freeze_and_confirm(synced, targets)
    convai_fake.add_sessions(convai_fake.character_ids()[0], 3)
    sync.perform_sync(sync.start(synced).pk)
    worker.work_job(job.pk)
    assert sorted(job.items.values_list("provider_id", flat=True)) == sorted(targets)
    assert sorted(convai_fake.deletes) == sorted(targets)


def test_reset_after_the_delete_is_read_back_and_not_sent_again(synced, convai_fake):
    targets = some_sessions(synced, 3)
    convai_fake.reset_after_delete_next(1)
    job = worker.work_job(freeze_and_confirm(synced, targets).pk)
    assert job.status == ErasureJob.Status.DONE
    assert set(job.items.values_list("state", flat=True)) == {State.VERIFIED}
    assert all(convai_fake.deletes[s] == 1 for s in targets)
    assert convai_fake.count("POST", "/character/chatHistory/delete") == 1
    assert "read-back" in job.items.first().detail


def test_server_errors_before_sending_are_retried_then_succeed(synced, convai_fake):
    targets = some_sessions(synced, 2)
    convai_fake.fail_next(1, status=503, path="/character/chatHistory/delete")
    job = worker.work_job(freeze_and_confirm(synced, targets).pk)
    states = set(job.items.values_list("state", flat=True))
    # A 503 means the provider did not do it; the same batch goes again and lands once.
    assert states == {State.VERIFIED}
    assert all(convai_fake.deletes[s] == 1 for s in targets)


def test_a_wrong_key_pauses_the_job_marks_the_connection_and_sends_nothing(synced, convai_fake):
    targets = some_sessions(synced, 2)
    job = freeze_and_confirm(synced, targets)
    synced.set_secrets({"api_key": "revoked-key-000000000000"})
    synced.save()
    job = worker.work_job(job.pk)
    assert job.status == ErasureJob.Status.PAUSED
    assert "refused the key" in job.last_error
    assert set(job.items.values_list("state", flat=True)) == {State.PENDING}
    assert job.items.filter(attempts__gt=0).count() == 0
    synced.refresh_from_db()
    assert synced.status == Connection.Status.INVALID
    assert all(fake_has(convai_fake, s) for s in targets)


def test_a_refused_delete_fails_each_item_with_the_reason(synced, convai_fake):
    convai_fake.plan_gated_delete = True
    targets = some_sessions(synced, 2)
    job = worker.work_job(freeze_and_confirm(synced, targets).pk)
    assert job.status == ErasureJob.Status.DONE
    assert set(job.items.values_list("state", flat=True)) == {State.FAILED}
    assert "select customers" in job.items.first().detail
    assert set(synced.conversations.filter(provider_id__in=targets)
               .values_list("mirror_state", flat=True)) == {"present"}


def test_a_session_already_gone_at_the_provider_does_not_fail_the_job(synced, convai_fake):
    targets = some_sessions(synced, 2)
    char = next(c for c in convai_fake.character_ids() if targets[0] in convai_fake.session_ids(c))
    with convai_fake.lock:
        del convai_fake.characters[char].sessions[targets[0]]
    job = worker.work_job(freeze_and_confirm(synced, targets).pk)
    assert job.status == ErasureJob.Status.DONE
    assert set(job.items.values_list("state", flat=True)) <= {State.VERIFIED, State.ALREADY_GONE}


def test_running_a_finished_job_again_sends_nothing(synced, convai_fake):
    job = worker.work_job(freeze_and_confirm(synced, some_sessions(synced, 2)).pk)
    sent = convai_fake.count("POST", "/character/chatHistory/delete")
    worker.work_job(job.pk)
    assert convai_fake.count("POST", "/character/chatHistory/delete") == sent


def test_freezing_skips_conversations_no_longer_present(synced):
    first = synced.conversations.order_by("id").first()
    Conversation.objects.filter(pk=first.pk).update(mirror_state="erased")
    with pytest.raises(freeze.SelectionError):
        freeze.conversations(synced.owner, synced.conversations.filter(pk=first.pk), {})
