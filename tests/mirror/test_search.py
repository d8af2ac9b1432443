"""Full-text search over message text, and "select all N matching" frozen in the database."""

from __future__ import annotations

import dataclasses

import pytest
from django.db import connection as db

from dashboard.erasure import freeze
from dashboard.mirror import selection
from dashboard.models import Conversation, ErasureItem, ErasureJob, Message

pytestmark = pytest.mark.django_db


def plant(conv: Conversation, text: str, pinned: bool = False) -> Message:
    return Message.objects.create(conversation=conv, provider_id=f"planted-{text[:20]}",
                                  position=999, author="You", is_human=True, text=text,
                                  pinned=pinned)


def test_search_finds_words_anywhere_in_a_message_in_any_order(synced):
    target, other = synced.conversations.all()[:2]
    plant(target, "My API key is sk-live-0042, please forget it, Zeppelin")
    found = selection.matching(synced.owner, {"q": "zeppelin key"})
    assert list(found) == [target]
    assert other not in selection.matching(synced.owner, {"q": "zeppelin"})


def test_search_understands_phrases_and_exclusions(synced):
    one, two = synced.conversations.all()[:2]
    plant(one, "the quick brown fox")
    plant(two, "the brown quick fox")
    assert set(selection.matching(synced.owner, {"q": '"quick brown"'})) == {one}
    assert set(selection.matching(synced.owner, {"q": "fox -brown"})) == set()
    assert set(selection.matching(synced.owner, {"q": "fox"})) == {one, two}


def test_search_still_matches_titles_by_substring(synced):
    conv = synced.conversations.first()
    conv.title = "Quarterly planning"
    conv.save()
    assert conv in selection.matching(synced.owner, {"q": "planning"})


def test_search_only_sees_what_the_person_may_see(synced, outsider):
    plant(synced.conversations.first(), "zeppelin")
    assert not selection.matching(outsider, {"q": "zeppelin"}).exists()


@pytest.mark.skipif(db.vendor != "postgresql", reason="the index is PostgreSQL's")
def test_the_message_search_is_served_by_the_full_text_index(synced):
    with db.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'message_text_fts'")
        [(definition,)] = cursor.fetchall()
    assert "gin" in definition.lower() and "to_tsvector" in definition
    matching = selection.matching(synced.owner, {"q": "zeppelin"})
    sql, params = matching.query.sql_with_params()
    with db.cursor() as cursor:
        # The table is tiny; forbid the sequential scan to see whether the index can serve.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # The query's expression is exactly the indexed one, so the planner may use the index
    # (on a big table it does; on this tiny one it prefers the conversation's own index).
    expression = "to_tsvector('simple'::regconfig, COALESCE(text, ''::text))"
    assert expression in definition and expression in plan


def test_select_all_freezes_every_match_with_the_same_items_as_before(synced):
    convs = list(synced.conversations.order_by("pk"))
    protected, pinned_one = convs[0], convs[1]
    Conversation.objects.filter(pk=protected.pk).update(protected=True)
    plant(pinned_one, "keep me", pinned=True)
    Conversation.objects.filter(pk=convs[2].pk).update(mirror_state="gone")
    freeze.conversations(synced.owner, selection.matching(synced.owner, {}), {"select_all": True})
    [job] = ErasureJob.objects.filter(connection=synced)
    items = {i.conversation_id: i for i in job.items.all()}
    assert set(items) == {c.pk for c in convs} - {convs[2].pk}
    for conv in convs:
        if conv.pk not in items:
            continue
        item = items[conv.pk]
        assert item.kind == "conversation" and item.message_id is None
        assert item.provider_id == item.conversation_provider_id == conv.provider_id
        assert item.character_provider_id == conv.character.provider_id
        assert item.idempotency_key == f"{job.pk}:conversation:{conv.provider_id}:" \
                                       f"{conv.provider_id}"
        assert item.attempts == 0 and item.response == {}
    assert items[protected.pk].state == "skipped"
    assert items[protected.pk].detail == freeze.PROTECTED
    assert items[protected.pk].settled_at is not None
    assert items[pinned_one.pk].detail == freeze.PINNED
    rest = [i for pk, i in items.items() if pk not in (protected.pk, pinned_one.pk)]
    assert rest and all(i.state == "pending" and i.detail == "" and i.settled_at is None
                        for i in rest)


def test_freezing_messages_copies_message_items(synced):
    conv = synced.conversations.first()
    msgs = list(conv.messages.order_by("position")[:2])
    Message.objects.filter(pk=msgs[1].pk).update(pinned=True)
    with pytest.MonkeyPatch.context() as patch:
        # Convai erases whole sessions only; pretend it could erase messages.
        from providers.convai import ConvaiProvider
        patch.setattr(ConvaiProvider, "capabilities", dataclasses.replace(
            ConvaiProvider.capabilities, erase_kinds=("message",)))
        request = freeze.messages(synced.owner, Message.objects.filter(
            pk__in=[m.pk for m in msgs]), {})
    items = list(ErasureItem.objects.filter(job__request=request).order_by("message_id"))
    assert [i.message_id for i in items] == [m.pk for m in msgs]
    assert items[0].state == "pending" and items[0].kind == "message"
    assert items[0].conversation_provider_id == conv.provider_id
    assert items[1].state == "skipped" and items[1].detail == freeze.PINNED_MESSAGE


def test_an_empty_selection_is_refused_and_drafts_nothing(synced):
    with pytest.raises(freeze.SelectionError):
        freeze.conversations(synced.owner, synced.conversations.none(), {})
    assert not ErasureJob.objects.exists()
