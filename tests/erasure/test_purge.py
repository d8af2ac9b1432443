"""Erased means erased in Lethe too: once the provider erased something, Lethe holds no
text of it (messages, titles, search, exports, pages, audit), a later sync never brings
it back, and a dry run purges nothing."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterator

import pytest
from django.apps import apps
from django.urls import reverse

from dashboard.erasure import freeze, lifecycle, worker
from dashboard.mirror import selection, sync
from dashboard.mirror.titles import derived_title
from dashboard.models import (
    AuditEvent,
    Connection,
    Conversation,
    ErasureItem,
    ErasureJob,
    Message,
    MirrorState,
)
from providers.fakes.base import FakeServer
from providers.fakes.characterai import CharacterAIFake
from tests.helpers import confirmed_job, connect, make_connection, pg_dump, shown

pytestmark = pytest.mark.django_db
State = ErasureItem.State


def texts_of(conversation: Conversation) -> list[str]:
    return [t for t in conversation.messages.values_list("text", flat=True) if t]


def test_a_verified_erasure_leaves_no_text_title_or_count_behind(client, synced, convai_fake):
    first = synced.conversations.order_by("id").first()
    said = texts_of(first)
    job = worker.work_job(confirmed_job(synced, 1).pk)
    assert job.items.get().state == State.VERIFIED
    first.refresh_from_db()
    assert (first.mirror_state, first.title, first.message_count) == (MirrorState.ERASED, "", 0)
    assert first.erased_at is not None
    assert set(first.messages.values_list("text", "author", "mirror_state")) == {
        ("", "", MirrorState.ERASED)}
    # What a receipt needs stays: ids, positions, times, who spoke.
    assert first.messages.count() == len(said) and all(
        m.created_at for m in first.messages.all())
    client.force_login(synced.owner)
    page = client.get(reverse("transcript", args=[first.pk])).content.decode()
    assert "Erased conversation" in page and f"job #{job.pk}" in page
    assert not any(line in page for line in said)
    listed = client.get(reverse("conversations") + "?state=erased").content.decode()
    assert "Erased conversation" in listed and not any(line in listed for line in said)
    assert not selection.matching(synced.owner, {"q": said[0].split()[0]}).filter(
        pk=first.pk).exists()


def test_a_dry_run_purges_nothing(synced, convai_fake):
    first = synced.conversations.order_by("id").first()
    said = texts_of(first)
    job = worker.work_job(confirmed_job(synced, 1, dry_run=True).pk)
    assert job.items.get().state == State.WOULD_ERASE
    first.refresh_from_db()
    assert first.mirror_state == MirrorState.PRESENT and texts_of(first) == said


def test_a_later_sync_never_brings_erased_text_back(synced, convai_fake):
    # The provider acknowledged the delete but keeps the session: still, Lethe's copy is
    # gone and stays gone, and the receipt (not the mirror) says it is still there.
    first = synced.conversations.order_by("id").first()
    with convai_fake.lock:
        char = next(c for c in convai_fake.characters.values()
                    if first.provider_id in c.sessions)
        kept = copy.deepcopy(char.sessions[first.provider_id])
    worker.work_job(confirmed_job(synced, 1).pk)
    with convai_fake.lock:
        char.sessions[first.provider_id] = kept
    assert sync.perform_sync(sync.start(synced, full=True).pk).status == "ok"
    first.refresh_from_db()
    assert first.mirror_state == MirrorState.ERASED and first.title == ""
    assert texts_of(first) == []


def test_an_export_holds_nothing_already_erased(client, synced, convai_fake):
    worker.work_job(confirmed_job(synced, 1).pk)
    erased = Conversation.objects.get(mirror_state=MirrorState.ERASED)
    request = freeze.conversations(synced.owner, synced.conversations.all(), {})
    client.force_login(synced.owner)
    body = b"".join(client.get(reverse("erase_export", args=[request, "jsonl"]))
                    .streaming_content).decode()
    assert body and erased.provider_id not in body


def test_protecting_a_conversation_audits_it_by_id_never_by_title(client, synced):
    first = synced.conversations.order_by("id").first()
    client.force_login(synced.owner)
    client.post(reverse("protect", args=[first.pk]), {"protected": "1"})
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEEP_LIST_CHANGED)
    assert first.title not in event.object_label
    assert first.provider_id in event.object_label and synced.label in event.object_label


# -- single messages (Character.AI erases them one by one) ---------------------------------


@pytest.fixture
def cai_fake() -> CharacterAIFake:
    return CharacterAIFake(seed=5, characters=1, chats=2, turns=(6, 6), archived=0, pinned=0)


@pytest.fixture
def cai(owner, cai_fake: CharacterAIFake) -> Iterator[Connection]:  # type: ignore[no-untyped-def]
    with cai_fake.serve() as server:
        connection = _synced(owner, cai_fake, server)
        yield connection


def _synced(owner, fake: CharacterAIFake, server: FakeServer) -> Connection:  # type: ignore[no-untyped-def]
    connection = connect(owner, fake, server.url)
    assert sync.perform_sync(sync.start(connection).pk).status == "ok"
    return connection


def test_an_erased_message_loses_its_text_its_count_and_the_title_it_gave(cai, cai_fake):
    conv, first_said = next(
        (c, m) for c in cai.conversations.order_by("id")
        for m in [c.messages.filter(is_human=True).order_by("position").first()]
        if m and c.title == derived_title(m.text))
    request = freeze.messages(cai.owner, Message.objects.filter(pk=first_said.pk), {})
    [job] = lifecycle.confirm(ErasureJob.objects.filter(request=request), dry_run=False,
                              enqueue=False)
    assert worker.work_job(job.pk).items.get().state == State.VERIFIED
    first_said.refresh_from_db()
    conv.refresh_from_db()
    assert (first_said.text, first_said.author, first_said.mirror_state) == (
        "", "", MirrorState.ERASED)
    assert conv.mirror_state == MirrorState.PRESENT and conv.message_count == 5
    now_first = conv.messages.filter(is_human=True, mirror_state=MirrorState.PRESENT
                                     ).order_by("position").first()
    assert conv.title == (derived_title(now_first.text) if now_first else conv.provider_id)


def test_a_resync_keeps_an_erased_message_out_even_if_the_provider_returns_it(cai, cai_fake):
    conv = cai.conversations.order_by("id").first()
    target = conv.messages.order_by("position").last()
    said = target.text
    with cai_fake.lock:
        chat = cai_fake.find_chat(conv.provider_id)
        turn = copy.deepcopy(next(t for t in chat.turns if t.id == target.provider_id))
    request = freeze.messages(cai.owner, Message.objects.filter(pk=target.pk), {})
    [job] = lifecycle.confirm(ErasureJob.objects.filter(request=request), dry_run=False,
                              enqueue=False)
    worker.work_job(job.pk)
    with cai_fake.lock:
        cai_fake.find_chat(conv.provider_id).turns.append(turn)  # the provider keeps it
    assert sync.perform_sync(sync.start(cai, full=True).pk).status == "ok"
    target.refresh_from_db()
    conv.refresh_from_db()
    assert target.text == "" and target.mirror_state == MirrorState.ERASED
    assert not Message.objects.filter(text=said).exists()
    assert conv.message_count == 5


# -- what earlier versions kept ----------------------------------------------------------


def test_the_migration_purges_what_earlier_versions_kept(synced, convai_fake):
    first, second = synced.conversations.order_by("id")[:2]
    job = confirmed_job(synced, 1)
    # As an earlier version left it: the mirror flipped to erased, the text still there.
    job.items.update(state=State.VERIFIED)
    Conversation.objects.filter(pk=first.pk).update(mirror_state=MirrorState.ERASED)
    Message.objects.filter(conversation=first).update(mirror_state=MirrorState.ERASED)
    ErasureJob.objects.filter(pk=job.pk).update(connection_label="", provider="")
    AuditEvent.objects.create(action=AuditEvent.Action.KEEP_LIST_CHANGED,
                              object_type="conversation", object_id=str(second.pk),
                              object_label=second.title)
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    LogEntry.objects.create(user=synced.owner, action_flag=CHANGE, object_id=str(second.pk),
                            object_repr=second.title,
                            content_type=ContentType.objects.get_for_model(Conversation))
    migration = importlib.import_module("dashboard.migrations.0009_purge_erased_text")
    migration.forwards(apps, None)
    assert LogEntry.objects.get().object_repr == f"conversation #{second.pk}"
    first.refresh_from_db()
    assert first.title == "" and texts_of(first) == []
    assert texts_of(second)  # untouched
    job.refresh_from_db()
    assert (job.connection_label, job.provider) == (synced.label, "convai")
    label = AuditEvent.objects.get(object_id=str(second.pk)).object_label
    assert second.provider_id in label and second.title not in label


# -- the whole database, after the fact ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_after_a_verified_erasure_no_row_anywhere_holds_the_erased_text(
        client, owner, convai_fake, convai_server):
    canary = "Canary 7731-Zebra: my passport number is X1234567"
    with convai_fake.lock:
        session = next(iter(convai_fake.characters.values())).newest_first()[0]
        speaker = session.interactions[0].lines[0][0]
        session.interactions[0].lines.insert(0, (speaker, canary))
    connection = make_connection(owner, convai_server.url)
    assert sync.perform_sync(sync.start(connection).pk).status == "ok"
    conv = Conversation.objects.get(provider_id=session.id)
    assert Message.objects.filter(text=canary).exists()
    client.force_login(owner)
    # Through the pages, with everything that could keep a copy: keep-list, export.
    client.post(reverse("protect", args=[conv.pk]), {"protected": "1"})
    client.post(reverse("protect", args=[conv.pk]), {"protected": "0"})
    preview = client.post(reverse("erase_selected"), {"conversation": [conv.pk]})
    export = b"".join(client.get(preview["Location"] + "export.jsonl").streaming_content)
    assert canary.encode() in export  # the person's own copy, downloaded before erasing
    client.post(preview["Location"], {"mode": "erase", **shown(1)})
    job = worker.work_job(ErasureJob.objects.get().pk)
    assert job.items.get().state == State.VERIFIED
    dump = pg_dump()
    kept = Message.objects.exclude(conversation=conv).exclude(text="").first()
    assert kept is not None and kept.text in dump  # the dump does hold the mirror
    assert "Canary 7731" not in dump  # as a message, a title, or the start of one


def test_a_sync_never_writes_a_title_or_count_into_an_erased_conversation(synced):
    from dashboard.mirror import bulk

    first = synced.conversations.order_by("id").first()
    Conversation.objects.filter(pk=first.pk).update(mirror_state=MirrorState.ERASED, title="",
                                                    message_count=0)
    first.title, first.message_count = "the chat's first line", 5
    bulk.update_conversations([first])  # as a sync that read the chat before the purge
    first.refresh_from_db()
    assert (first.title, first.message_count) == ("", 0)


@pytest.mark.django_db(transaction=True)
def test_a_purge_waits_for_a_sync_of_the_connection_under_way(owner, convai_server):
    import threading

    from django.db import connection as db
    from django.db import transaction

    from dashboard.erasure import outcomes
    from dashboard.lib import locks

    connection = make_connection(owner, convai_server.url)
    assert sync.perform_sync(sync.start(connection).pk).status == "ok"
    job = confirmed_job(connection, 1)
    item = job.items.get()
    item.state = State.ERASED
    syncing, done = threading.Event(), threading.Event()

    def a_sync_under_way() -> None:
        with transaction.atomic():
            locks.hold(locks.MIRROR, [connection.pk])
            syncing.set()
            done.wait(10)
        db.close()

    holder = threading.Thread(target=a_sync_under_way)
    holder.start()
    syncing.wait(10)
    purged = threading.Thread(target=lambda: (outcomes.settle_mirror([item]), db.close()))
    purged.start()
    purged.join(1.0)
    assert purged.is_alive()  # waiting for the sync to commit
    done.set()
    purged.join(10)
    holder.join(10)
    assert Conversation.objects.get(pk=item.conversation_id).mirror_state == MirrorState.ERASED
