"""Sync mirrors a connection from the Convai fake over real HTTP; failures change nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard.mirror import sync
from dashboard.models import Character, Connection, Conversation, Message, SyncRun

pytestmark = pytest.mark.django_db


def run_sync(connection: Connection) -> SyncRun:
    return sync.perform_sync(sync.start(connection).pk)


def snapshot(connection: Connection) -> list[tuple]:
    return sorted(
        Message.objects.filter(conversation__connection=connection).values_list(
            "conversation__provider_id", "provider_id", "text", "mirror_state"
        )
    )


def test_first_sync_mirrors_every_character_session_and_message(connection, convai_fake):
    run = run_sync(connection)
    assert run.status == SyncRun.Status.OK and run.full
    expected_sessions = {s for c in convai_fake.character_ids() for s in convai_fake.session_ids(c)}
    assert set(connection.conversations.values_list("provider_id", flat=True)) == expected_sessions
    assert Character.objects.filter(connection=connection).count() == 2
    assert run.conversations == len(expected_sessions) == 12
    assert Message.objects.filter(conversation__connection=connection).count() == run.messages > 0
    conv = connection.conversations.first()
    positions = list(conv.messages.values_list("position", flat=True))
    assert positions == list(range(len(positions)))
    assert conv.title and conv.last_message_at is not None


def test_second_sync_is_incremental_and_rereads_only_what_can_have_grown(synced, convai_fake):
    convai_fake.clear_faults()
    char = convai_fake.character_ids()[0]
    [new_session] = convai_fake.add_sessions(char, 1)
    run = run_sync(synced)
    assert run.status == SyncRun.Status.OK and not run.full
    assert synced.conversations.filter(provider_id=new_session).exists()
    # Old sessions (seeded long before the last sync) were not read again.
    assert convai_fake.count("POST", "/character/chatHistory/details") == 1


def test_sessions_deleted_elsewhere_are_marked_gone_not_dropped(synced, convai_fake):
    char = convai_fake.character_ids()[0]
    victim = convai_fake.session_ids(char)[0]
    with convai_fake.lock:
        del convai_fake.characters[char].sessions[victim]
    run = run_sync(synced)
    assert run.gone == 1
    conv = synced.conversations.get(provider_id=victim)
    assert conv.mirror_state == "gone" and conv.messages.exists()


@pytest.mark.parametrize("fault", ["wrong_key", "server_error", "malformed", "unknown_url"])
def test_failed_sync_leaves_the_mirror_untouched_and_says_why(synced, convai_fake, fault):
    before = snapshot(synced)
    conversations_before = Conversation.objects.count()
    if fault == "wrong_key":
        synced.set_secrets({"api_key": "not-the-right-key-000000"})
        synced.save()
    elif fault == "server_error":
        convai_fake.fail_next(20, status=503)
    elif fault == "malformed":
        convai_fake.malformed_next(20)
    else:
        synced.options = {"base_url": "http://127.0.0.1:9"}
        synced.save()
    # Make sure there is something a half-done sync could have written.
    convai_fake.add_sessions(convai_fake.character_ids()[0], 2)
    run = run_sync(synced)
    assert run.status == SyncRun.Status.FAILED
    assert run.error
    assert snapshot(synced) == before
    assert Conversation.objects.count() == conversations_before
    synced.refresh_from_db()
    assert synced.last_error == run.error
    if fault == "wrong_key":
        assert synced.status == Connection.Status.INVALID
        assert "refused the key" in run.error and "Invalid API key" in run.error


def test_a_fixed_key_makes_the_connection_valid_again(synced):
    synced.status = Connection.Status.INVALID
    synced.save()
    assert run_sync(synced).status == SyncRun.Status.OK
    synced.refresh_from_db()
    assert synced.status == Connection.Status.OK and synced.last_error == ""


def test_a_run_no_worker_took_stops_blocking_new_syncs(connection):
    lost = sync.start(connection)
    assert sync.in_progress(connection) == lost
    SyncRun.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert sync.in_progress(connection) is None
    lost.refresh_from_db()
    assert lost.status == SyncRun.Status.FAILED and "No worker started it" in lost.error


def test_a_run_whose_worker_fell_silent_is_failed_and_can_start_again(connection):
    dead = sync.start(connection)
    SyncRun.objects.filter(pk=dead.pk).update(status=SyncRun.Status.RUNNING,
                                              heartbeat_at=timezone.now())
    assert sync.in_progress(connection) == dead  # a live worker is on it
    assert sync.perform_sync(dead.pk).status == SyncRun.Status.RUNNING  # a second delivery
    SyncRun.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=2))
    assert sync.in_progress(connection) is None
    dead.refresh_from_db()
    assert dead.status == SyncRun.Status.FAILED and "worker stopped" in dead.error
    assert sync.perform_sync(sync.start(connection).pk).status == SyncRun.Status.OK


@pytest.mark.django_db(transaction=True)  # the queue is asked once the run is committed
def test_a_sync_that_could_not_be_queued_says_so_instead_of_a_500(client, connection, owner,
                                                                  monkeypatch):
    from dashboard.lib import queue

    def broker_away(task: str, pk: int, copies: int = 1) -> None:
        raise ConnectionRefusedError("broker away")

    monkeypatch.setattr(queue, "dispatch", broker_away)
    client.force_login(owner)
    response = client.post(reverse("connection_sync", args=[connection.pk]), follow=True)
    assert response.status_code == 200
    assert "task queue could not be reached" in response.content.decode()
    assert connection.sync_runs.get().status == SyncRun.Status.FAILED
    assert sync.in_progress(connection) is None  # "Sync now" starts a new one


def test_a_sync_task_retried_after_a_database_error_resumes_its_own_run(connection,
                                                                         monkeypatch):
    from django.db import OperationalError

    from dashboard import tasks

    run = sync.start(connection, send=False)
    real, failures = sync._perform, [OperationalError("server closed the connection")]

    def database_drops_once(sync_run: SyncRun, *rest: Any) -> SyncRun:
        if failures:
            raise failures.pop()
        return real(sync_run, *rest)

    monkeypatch.setattr(sync, "_perform", database_drops_once)
    # The first try left the run "running" with a fresh heartbeat, as a live one would be;
    # the retry is the same task, so it takes the run back rather than leaving it be.
    tasks.sync_connection.apply(args=[run.pk])
    run.refresh_from_db()
    assert run.status == SyncRun.Status.OK and not failures


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("reads_first", [True, False])
def test_where_one_writer_is_allowed_a_sync_reads_everything_before_its_transaction(
    connection, monkeypatch, reads_first
):
    """On SQLite a sync's transaction takes the only write lock, so the sign-in and every
    other write of the web server would wait for the whole read: there the sync reads
    first and writes after. Elsewhere it reads inside its transaction, holding the mirror."""
    from django.db import transaction

    from dashboard.mirror.reader import Reader

    in_transaction: list[bool] = []
    read = Reader.items

    def watched(self):  # type: ignore[no-untyped-def]
        for item in read(self):
            in_transaction.append(transaction.get_connection().in_atomic_block)
            yield item

    monkeypatch.setattr(Reader, "items", watched)
    monkeypatch.setattr(sync, "reads_first", lambda: reads_first)
    run = sync.perform_sync(sync.start(connection).pk)
    assert run.status == "ok", run.error
    assert connection.conversations.count() == 12
    assert in_transaction and set(in_transaction) == {not reads_first}

