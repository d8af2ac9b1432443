"""Streaming sync: many chats, several in flight, bulk writes, still all-or-nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from dashboard.mirror import reader, sync, writer
from dashboard.models import Connection, Conversation, Message, SyncRun
from providers.fakes.base import FakeServer
from providers.fakes.characterai import CharacterAIFake
from providers.fakes.characterai_data import Candidate, Turn
from tests.helpers import connect

pytestmark = pytest.mark.django_db


@pytest.fixture
def cai_fake() -> CharacterAIFake:
    # 130 turns a chat: three pages of 50, newest first.
    return CharacterAIFake(seed=3, characters=2, chats=6, turns=(130, 130), archived=0)


@pytest.fixture
def cai_server(cai_fake: CharacterAIFake) -> Iterator[FakeServer]:
    with cai_fake.serve() as server:
        yield server


@pytest.fixture
def cai(db, owner, cai_fake, cai_server) -> Connection:  # type: ignore[no-untyped-def]
    return connect(owner, cai_fake, cai_server.url, "Team C.AI")


@pytest.fixture
def small_flushes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Write after every chat, so a late failure comes after real writes."""
    monkeypatch.setattr(writer, "FLUSH_ROWS", 1)


def test_every_page_of_every_chat_is_mirrored_in_order(cai, cai_fake, small_flushes):
    run = sync.perform_sync(sync.start(cai).pk)
    assert run.status == SyncRun.Status.OK, run.error
    assert run.messages == 12 * 130 == Message.objects.count()
    for conv in Conversation.objects.filter(connection=cai):
        ids = list(conv.messages.order_by("position").values_list("provider_id", flat=True))
        assert ids == cai_fake.message_ids(conv.provider_id)
        assert conv.message_count == 130 and conv.title


def test_the_configured_number_of_chats_is_read_at_once(cai, cai_fake, settings):
    settings.LETHE_SYNC_CONCURRENCY = 3
    cai_fake.latency = 0.02  # long enough for requests to overlap, as at a real provider
    run = sync.perform_sync(sync.start(cai).pk)
    assert run.status == SyncRun.Status.OK
    assert cai_fake.peak_in_flight == 3


def test_a_failure_after_some_chats_were_written_leaves_nothing_behind(
        cai, cai_fake, settings, small_flushes):
    settings.LETHE_SYNC_CONCURRENCY = 1
    last = cai_fake.chat_ids(cai_fake.character_ids()[-1])[-1]
    # A refusal no retry can fix, on the last chat read: the others are already written.
    cai_fake.fail_next(1, status=400, path=f"/turns/{last}/")
    run = sync.perform_sync(sync.start(cai).pk)
    assert run.status == SyncRun.Status.FAILED and run.error
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_a_failed_resync_restores_the_mirror_exactly(cai, cai_fake, settings, small_flushes):
    assert sync.perform_sync(sync.start(cai).pk).status == SyncRun.Status.OK
    before = sorted(Message.objects.values_list("conversation__provider_id", "provider_id",
                                                "text", "mirror_state"))
    convs_before = sorted(Conversation.objects.values_list("provider_id", "title",
                                                           "message_count", "mirror_state"))
    char = cai_fake.character_ids()[0]
    new = cai_fake.add_chats(char, 2, turns=60)
    settings.LETHE_SYNC_CONCURRENCY = 1
    cai_fake.fail_next(1, status=400, path=f"/turns/{new[-1]}/")
    run = sync.perform_sync(sync.start(cai).pk)
    assert run.status == SyncRun.Status.FAILED
    assert sorted(Message.objects.values_list("conversation__provider_id", "provider_id",
                                              "text", "mirror_state")) == before
    assert sorted(Conversation.objects.values_list("provider_id", "title", "message_count",
                                                   "mirror_state")) == convs_before


def turn_pages_read(fake: CharacterAIFake) -> int:
    return sum(n for key, n in fake.requests.items() if key.startswith("GET /turns/"))


def grow(fake: CharacterAIFake, chat_id: str, texts: list[str]) -> list[str]:
    """New turns at the newest end of a chat, as if someone went on chatting."""
    chat = fake.find_chat(chat_id)
    assert chat is not None
    ids = []
    with fake.lock:
        for text in texts:
            at = chat.turns[-1].at + timedelta(minutes=1)
            ident = str(uuid.uuid4())
            chat.turns.append(Turn(ident, at, "1234", "me", True,
                                   [Candidate(ident + "-c", text, at)], ident + "-c"))
            ids.append(ident)
        fake.changed()
    return ids


def test_a_full_resync_marks_messages_removed_elsewhere_gone(cai, cai_fake):
    assert sync.perform_sync(sync.start(cai).pk).status == SyncRun.Status.OK
    chat_id = cai_fake.chat_ids(cai_fake.character_ids()[0])[0]
    chat = cai_fake.find_chat(chat_id)
    assert chat is not None
    removed = chat.turns[5].id
    with cai_fake.lock:
        chat.turns = [t for t in chat.turns if t.id != removed]
    cai_fake.clear_faults()
    run = sync.perform_sync(sync.start(cai, full=True).pk)
    assert run.status == SyncRun.Status.OK and run.full
    assert Message.objects.get(provider_id=removed).mirror_state == "gone"
    assert Conversation.objects.get(provider_id=chat_id).message_count == 129


def test_an_incremental_resync_reads_a_grown_chat_back_to_what_the_mirror_has(cai, cai_fake):
    assert sync.perform_sync(sync.start(cai).pk).status == SyncRun.Status.OK
    chat_id = cai_fake.chat_ids(cai_fake.character_ids()[0])[0]
    new = grow(cai_fake, chat_id, ["One more thing", "And another"])
    cai_fake.add_chats(cai_fake.character_ids()[0], 1, turns=4)  # something new elsewhere
    cai_fake.clear_faults()
    run = sync.perform_sync(sync.start(cai).pk)
    assert run.status == SyncRun.Status.OK and not run.full
    # The grown chat (132 turns, three pages) cost one page, the new chat one; the other
    # eleven chats were not read at all.
    assert turn_pages_read(cai_fake) == 1 + 1
    conv = Conversation.objects.get(provider_id=chat_id)
    assert conv.message_count == 132
    ids = list(conv.messages.order_by("position").values_list("provider_id", flat=True))
    assert ids == cai_fake.message_ids(chat_id) and ids[-2:] == new
    assert conv.messages.get(provider_id=new[-1]).text == "And another"


def test_an_incremental_resync_counts_what_the_mirror_holds_and_takes_a_new_title(
        cai, cai_fake):
    assert sync.perform_sync(sync.start(cai).pk).status == SyncRun.Status.OK
    chat_id = cai_fake.chat_ids(cai_fake.character_ids()[0])[0]
    chat = cai_fake.find_chat(chat_id)
    assert chat is not None
    # Five turns were erased through Lethe: gone at the provider, marked in the mirror.
    erased = [t.id for t in chat.turns[10:15]]
    with cai_fake.lock:
        chat.turns = [t for t in chat.turns if t.id not in erased]
        chat.name = "Renamed since"
    Message.objects.filter(provider_id__in=erased).update(mirror_state="erased")
    grow(cai_fake, chat_id, ["Back again", "Still here"])
    cai_fake.clear_faults()
    run = sync.perform_sync(sync.start(cai).pk)
    assert run.status == SyncRun.Status.OK and not run.full
    conv = Conversation.objects.get(provider_id=chat_id)
    assert conv.message_count == 130 - 5 + 2 == len(cai_fake.message_ids(chat_id))
    assert conv.title == "Renamed since"


def test_a_failed_incremental_resync_leaves_a_grown_chat_as_it_was(
        cai, cai_fake, settings, small_flushes):
    assert sync.perform_sync(sync.start(cai).pk).status == SyncRun.Status.OK
    before = sorted(Message.objects.values_list("conversation__provider_id", "provider_id",
                                                "position", "text", "mirror_state"))
    counts = sorted(Conversation.objects.values_list("provider_id", "message_count", "title"))
    char = cai_fake.character_ids()[0]
    grown, failing = cai_fake.chat_ids(char)[:2]
    grow(cai_fake, grown, ["Written, then rolled back"])
    grow(cai_fake, failing, ["Never read"])
    settings.LETHE_SYNC_CONCURRENCY = 1
    cai_fake.clear_faults()
    cai_fake.fail_next(1, status=400, path=f"/turns/{failing}/")
    run = sync.perform_sync(sync.start(cai).pk)
    assert run.status == SyncRun.Status.FAILED and not run.full
    # The grown chat was read (one page) and written before the other one failed.
    assert cai_fake.count("GET", f"/turns/{grown}/") == 1
    assert sorted(Message.objects.values_list("conversation__provider_id", "provider_id",
                                              "position", "text", "mirror_state")) == before
    assert sorted(Conversation.objects.values_list("provider_id", "message_count",
                                                   "title")) == counts


def test_an_incremental_resync_rereads_a_chat_whose_newest_message_went_away(cai, cai_fake):
    assert sync.perform_sync(sync.start(cai).pk).status == SyncRun.Status.OK
    chat_id = cai_fake.chat_ids(cai_fake.character_ids()[0])[0]
    chat = cai_fake.find_chat(chat_id)
    assert chat is not None
    newest = chat.turns[-1].id
    with cai_fake.lock:
        chat.turns = chat.turns[:-1]
    grow(cai_fake, chat_id, ["Starting over"])
    cai_fake.clear_faults()
    run = sync.perform_sync(sync.start(cai).pk)
    assert run.status == SyncRun.Status.OK and not run.full
    # Paged to the end without finding it, then read whole: 3 + 3 pages.
    assert turn_pages_read(cai_fake) == 6
    assert Message.objects.get(provider_id=newest).mirror_state == "gone"
    conv = Conversation.objects.get(provider_id=chat_id)
    ids = list(conv.messages.filter(mirror_state="present").order_by("position")
               .values_list("provider_id", flat=True))
    assert ids == cai_fake.message_ids(chat_id) and conv.message_count == 130


def test_a_sync_is_full_again_once_the_last_full_one_is_old(cai, cai_fake, settings):
    first = sync.perform_sync(sync.start(cai).pk)
    assert first.full
    assert not sync.start(cai).full
    settings.LETHE_FULL_SYNC_DAYS = 0
    assert sync.start(cai).full


def test_an_erased_conversation_stays_erased_after_a_resync(cai, cai_fake):
    assert sync.perform_sync(sync.start(cai).pk).status == SyncRun.Status.OK
    conv = Conversation.objects.first()
    assert conv is not None
    Conversation.objects.filter(pk=conv.pk).update(mirror_state="erased")
    assert sync.perform_sync(sync.start(cai).pk).status == SyncRun.Status.OK
    conv.refresh_from_db()
    assert conv.mirror_state == "erased"


def test_the_reader_hands_over_through_a_bounded_queue(cai):
    chats = reader.Reader(cai.open_provider(), {}, None, 4)
    # Memory is flat in the number of messages: at most this many chats wait to be written.
    assert chats.out.maxsize == 8
