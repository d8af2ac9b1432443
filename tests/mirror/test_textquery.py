"""The search grammar means the same on PostgreSQL and on SQLite (run this file with and
without DATABASE_URL): words in any order, "phrases", -exclusions, whole words only, and
character names found like titles."""

from __future__ import annotations

import pytest

from dashboard.mirror import selection, textquery
from dashboard.mirror.textquery import Term
from dashboard.models import Character, Conversation, Message


def test_the_grammar_splits_words_phrases_and_exclusions():
    assert textquery.parse('fox "quick  brown" -lazy -"red dog" jane@example.com') == [
        Term("fox", False), Term("quick brown", False), Term("lazy", True),
        Term("red dog", True), Term("jane@example.com", False)]
    # Punctuation around a word is not part of it; punctuation alone is no term at all.
    assert textquery.parse('hello, "world!" - " ') == [Term("hello", False),
                                                         Term("world", False)]
    assert textquery.parse('"unclosed phrase') == [Term("unclosed phrase", False)]


def plant(conv: Conversation, text: str) -> Message:
    return Message.objects.create(conversation=conv, provider_id=f"planted-{text[:30]}",
                                  position=999, author="You", is_human=True, text=text)


def found(owner, q: str) -> set[Conversation]:  # type: ignore[no-untyped-def]
    return set(selection.matching(owner, {"q": q}))


@pytest.mark.django_db
def test_words_phrases_and_exclusions_match_within_one_message(synced):
    one, two, three = synced.conversations.order_by("id")[:3]
    plant(one, "The quick brown fox, then the lazy dog.")
    plant(two, "A brown and quick Fox")
    plant(three, "fox")
    plant(three, "quick brown")  # both words, but never in one message
    owner = synced.owner
    assert found(owner, "FOX quick brown") == {one, two}
    assert found(owner, '"quick brown" fox') == {one}
    assert found(owner, "fox -lazy quick") == {two}
    assert found(owner, 'fox -"lazy dog" brown') == {two}
    assert found(owner, "fo") == set()  # whole words, not pieces of them
    assert found(owner, '" -') == set()  # nothing to look for finds nothing


@pytest.mark.django_db
def test_addresses_and_hyphenated_codes_are_found_as_typed(synced):
    one, two = synced.conversations.order_by("id")[:2]
    plant(one, "write to jane.doe@example.com about sk-live-0042")
    plant(two, "jane doe at example dot com")
    owner = synced.owner
    assert found(owner, "jane.doe@example.com") == {one}
    assert found(owner, "sk-live-0042") == {one}
    assert found(owner, "sk-live-0043") == set()


@pytest.mark.django_db
def test_character_names_and_titles_follow_the_same_grammar(synced):
    character = synced.characters.order_by("id").first()
    Character.objects.filter(pk=character.pk).update(name="Zelda Quartermaine")
    hers = set(synced.conversations.filter(character=character))
    titled = synced.conversations.exclude(character=character).order_by("id").first()
    Conversation.objects.filter(pk=titled.pk).update(title="Planning the Zelda launch")
    owner = synced.owner
    assert hers and found(owner, "quartermaine zelda") == hers
    assert found(owner, "zelda") == hers | {titled}
    assert found(owner, "zelda -launch") == hers
    assert found(owner, '"launch zelda"') == set()
    assert found(owner, '"the zelda launch"') == {titled}


def test_python_and_the_database_agree_on_a_title():
    terms = textquery.parse('zelda -"launch party"')
    assert textquery.holds("Planning the Zelda launch", terms)
    assert not textquery.holds("The Zelda launch party", terms)
    assert not textquery.holds("Zeldas", terms)
    assert not textquery.holds("anything", [])


@pytest.mark.django_db
def test_search_finds_a_character_by_name_and_says_so(client, synced):
    character = synced.characters.order_by("id").first()
    Character.objects.filter(pk=character.pk).update(name="Zelda Quartermaine")
    client.force_login(synced.owner)
    page = client.get("/search/", {"q": "quartermaine"}).content.decode()
    count = synced.conversations.filter(character=character).count()
    assert f"{count} conversation" in page and "Matches the character's name." in page
