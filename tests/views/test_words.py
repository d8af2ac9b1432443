"""The words on the pages: capabilities as "can" / "cannot" sentences, numbers that agree
with their nouns, no empty sections, and one table of labels for every stored state."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.urls import reverse

import providers
from dashboard.erasure import freeze
from dashboard.lib import labels
from dashboard.mirror import sync
from dashboard.models import (
    Connection,
    Conversation,
    ErasureItem,
    ErasureJob,
    MirrorState,
    PolicyRun,
    ProviderState,
    SyncRun,
)
from providers.fakes.characterai import CharacterAIFake
from tests.helpers import connect

pytestmark = pytest.mark.django_db

# What a person reading the capabilities should never meet: API field names, query
# parameters, the future tense that made "It will not: Cannot ..." possible.
JARGON = re.compile(r"\w_\w|=|\bwill\b|\b(?:uuid|endpoint|HTTP|410)\b", re.IGNORECASE)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.mark.parametrize("name", sorted(providers.REGISTRY))
def test_capabilities_are_can_and_cannot_sentences_without_api_names(name):
    caps = providers.get(name).capabilities
    assert caps.can and caps.cannot
    for line in caps.can:
        assert line.startswith("Lethe can ") and line.endswith("."), line
    for line in caps.cannot:
        assert line.startswith("Lethe cannot ") and line.endswith("."), line
        assert "cannot not" not in line and " not delete" not in line, line
    for line in (*caps.can, *caps.cannot, caps.verify):
        assert not JARGON.search(line), line


def preview_of(client, request_id) -> str:  # type: ignore[no-untyped-def]
    return client.get(reverse("erase_preview", args=[request_id])).content.decode()


def test_the_memory_warning_agrees_in_number(owner_client, synced):
    two = synced.conversations.order_by("id")[:2]
    request_id = freeze.conversations(synced.owner, synced.conversations.filter(
        pk__in=two.values("pk")), {})
    synced.conversations.update(flags={})  # the fake marks some at random
    Conversation.objects.filter(pk=two[0].pk).update(flags={"in_memory": True})
    assert "1 of these sessions was added to the character" in preview_of(
        owner_client, request_id)
    Conversation.objects.filter(pk__in=two.values("pk")).update(flags={"in_memory": True})
    page = preview_of(owner_client, request_id)
    assert "2 of these sessions were added to the character" in page
    assert "sessions was" not in page and "session were" not in page


def test_a_preview_with_nothing_left_to_send_draws_no_empty_section(owner_client, synced):
    chosen = synced.conversations.order_by("id")[:2]
    request_id = freeze.conversations(synced.owner, synced.conversations.filter(
        pk__in=chosen.values("pk")), {})
    page = preview_of(owner_client, request_id)
    assert "Characters touched" in page and "<h3>Sample" in page  # while something goes
    # Everything skipped since (say, protected meanwhile): nothing goes, so nothing to list.
    ErasureItem.objects.filter(job__request=request_id).update(
        state=ErasureItem.State.SKIPPED, detail="protected (keep-list)")
    page = preview_of(owner_client, request_id)
    assert "Characters touched" not in page and "<h3>Sample" not in page
    assert "<thead>" not in page
    assert "2 items: protected (keep-list)" in page


def test_the_sample_of_whole_conversations_says_how_many_messages_go(owner_client, synced):
    conv = synced.conversations.order_by("id").first()
    request_id = freeze.conversations(synced.owner, synced.conversations.filter(pk=conv.pk), {})
    page = preview_of(owner_client, request_id)
    n = conv.message_count
    assert f"all {n} message{'s' if n != 1 else ''}" in page
    assert f"{conv.character.name}: 1 conversation</li>" in page
    assert "Lethe can delete whole sessions" in page
    assert "Lethe cannot delete single messages of a session." in page


@pytest.fixture
def chat(owner) -> Iterator[Connection]:  # type: ignore[no-untyped-def]
    """A Character.AI connection, whose provider erases single messages."""
    fake = CharacterAIFake(seed=9, characters=1, chats=1, turns=(4, 4), archived=0, pinned=0)
    with fake.serve() as server:
        connection = connect(owner, fake, server.url)
        assert sync.perform_sync(sync.start(connection).pk).status == "ok"
        yield connection


def test_a_message_in_the_sample_shows_its_author_and_how_it_starts(owner_client, chat):
    conv = chat.conversations.get()
    message = conv.messages.order_by("position")[1]
    message.text = ("A long message that goes on and on, well past the width of one table "
                    "cell, so the sample cuts it at a word.")
    message.save(update_fields=["text"])
    request_id = freeze.messages(chat.owner, conv.messages.filter(pk=message.pk), {})
    page = preview_of(owner_client, request_id)
    assert f'<span class="author">{message.author}:</span> A long message that goes on' in page
    assert "cuts it at a word." not in page and "…" in page
    assert "1</strong> single message" in page
    assert f"{conv.character.name}: 1 message</li>" in page


def test_approval_is_mentioned_only_where_it_is_needed(owner_client, synced, settings):
    settings.LETHE_CANCEL_WINDOW = 60
    first = synced.conversations.order_by("id").first()
    request_id = freeze.conversations(synced.owner, synced.conversations.filter(pk=first.pk), {})
    page = preview_of(owner_client, request_id)
    assert "approv" not in page.split("Before you erase")[1].split("</section>")[0]
    settings.LETHE_APPROVAL_ALL = True
    page = preview_of(owner_client, request_id)
    assert "Once an approver has approved it" in page


@pytest.mark.parametrize(("choices", "table"), [
    (ErasureJob._meta.get_field("status").choices, labels.JOB_STATUS),
    (ErasureItem.State.choices, labels.ITEM_STATE),
    (ErasureItem.Kind.choices, labels.ITEM_KIND),
    (MirrorState.choices, labels.MIRROR_STATE),
    (ProviderState.choices, labels.PROVIDER_STATE),
    (Connection.Status.choices, labels.CONNECTION_STATUS),
    (SyncRun.Status.choices, labels.SYNC_STATUS),
    (PolicyRun.Status.choices, labels.POLICY_RUN_STATUS),
])
def test_every_stored_state_takes_its_label_from_the_one_table(choices, table):
    assert dict(choices) == table
    assert set(table) <= set(labels.ITEM_OUTCOME) or table is not labels.ITEM_STATE


def test_outcome_phrases_follow_the_state_table_and_leave_out_zeros():
    assert labels.outcomes({"failed": 2, "verified": 113, "pending": 0}) == \
        "113 verified, 2 failed"
    assert labels.outcomes({"would_erase": 5}) == "5 would be erased"
    assert labels.outcomes({}) == ""
    assert set(labels.ITEM_OUTCOME) == set(labels.ITEM_STATE)
    # A value from a newer release still reads as words.
    assert labels.label(labels.ITEM_STATE, "half_gone") == "Half gone"
