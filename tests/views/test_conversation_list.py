"""The conversation list: a character filter that follows the connection, removable
chips, the connection column, the total, column sorting, date errors that list nothing,
and a selection held on the server across pages and filters, exported and erased."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.urls import reverse
from django.utils.html import escape

from dashboard.mirror import selection
from dashboard.models import Conversation, ErasureJob

pytestmark = pytest.mark.django_db
URL = "/conversations/"


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def listed(response) -> list[int]:  # type: ignore[no-untyped-def]
    return [c.pk for c in response.context["page"].rows]


def test_the_character_choices_follow_the_connection_and_a_foreign_one_is_dropped(
        owner_client, synced, second):
    mine = synced.characters.order_by("id").first()
    theirs = second.characters.order_by("id").first()
    part = owner_client.get(URL, {"connection": second.pk, "part": "character"},
                            HTTP_HX_REQUEST="true").content.decode()
    assert f'value="{theirs.pk}"' in part and f'value="{mine.pk}"' not in part
    assert 'id="character-field"' in part
    # A character left over from another connection is dropped, visibly, not applied.
    response = owner_client.get(URL, {"connection": second.pk, "character": mine.pk})
    assert sorted(listed(response)) == sorted(second.conversations.values_list("pk", flat=True))
    assert (f"The character filter was dropped: {mine.name} is not a character of {second}."
            in response.content.decode())
    unknown = owner_client.get(URL, {"character": "999999"})
    assert "no character you can see has that id" in unknown.content.decode()
    assert sorted(listed(unknown)) == sorted(Conversation.objects.values_list("pk", flat=True))
    kept = owner_client.get(URL, {"connection": second.pk, "character": theirs.pk})
    assert sorted(listed(kept)) == sorted(
        second.conversations.filter(character=theirs).values_list("pk", flat=True))
    assert "was dropped" not in kept.content.decode()


def test_each_active_filter_is_a_chip_that_removes_only_itself(owner_client, synced):
    char = synced.characters.order_by("id").first()
    response = owner_client.get(URL, {"character": char.pk, "state": "present",
                                      "sort": "title"})
    chips = {c["label"]: c for c in response.context["chips"]}
    assert set(chips) == {"Character", "State"}
    assert chips["Character"]["value"] == char.name
    without = owner_client.get(URL + chips["Character"]["url"])
    assert without.context["form"].cleaned_data["state"] == "present"
    assert without.context["form"].cleaned_data["character"] is None
    assert without.context["form"].cleaned_data["sort"] == "title"  # the sort stays
    assert f'href="{escape(chips["State"]["url"])}"' in response.content.decode()


def test_the_connection_column_and_the_total(owner_client, synced, second):
    both = owner_client.get(URL)
    assert both.context["show_connection"] and "Second Convai" in both.content.decode()
    # The count comes after the page (HTMX asks for it), or with it when asked.
    assert both.context["total"] is None and 'part=count' in both.content.decode()
    count = owner_client.get(URL, {"part": "count"}, HTTP_HX_REQUEST="true")
    assert f"{Conversation.objects.count()} conversations match." in count.content.decode()
    one = owner_client.get(URL, {"connection": second.pk, "count": "1"})
    assert not one.context["show_connection"]
    assert one.context["total"] == second.conversations.count()
    assert f"{second.conversations.count()} conversations match this filter." in \
        one.content.decode()


def test_headers_sort_the_list_and_say_how(owner_client, synced):
    titles = sorted(synced.conversations.values_list("title", flat=True), key=str.lower)
    response = owner_client.get(URL, {"sort": "title"})
    assert [c.title for c in response.context["page"].rows] == titles
    columns = {c["key"]: c for c in response.context["columns"]}
    assert columns["title"]["aria_sort"] == "ascending"
    assert 'aria-sort="ascending"' in response.content.decode()
    assert "sort=-title" in columns["title"]["url"]  # a second click reverses it
    reverse_ = owner_client.get(URL + columns["title"]["url"])
    assert [c.title for c in reverse_.context["page"].rows] == titles[::-1]
    by_count = owner_client.get(URL + columns["messages"]["url"])
    counts = [c.message_count for c in by_count.context["page"].rows]
    assert counts == sorted(counts, reverse=True)
    assert owner_client.get(URL, {"sort": "oldest"}).context["form"].is_valid()  # old links


@pytest.mark.parametrize("dates", [{"start": "2025-02-01", "end": "2025-01-01"},
                                   {"start": "not-a-date"}])
def test_a_bad_date_shows_the_error_and_lists_nothing(owner_client, synced, dates):
    response = owner_client.get(URL, dates)
    page = response.content.decode()
    assert listed(response) == [] and response.context["total"] == 0
    assert "Correct the filter above" in page
    assert "The From date is after the To date" in page or "Enter a valid date" in page


def post_page(client, rows, ticked, **extra):  # type: ignore[no-untyped-def]
    return client.post(reverse("conversation_selection"),
                       {"shown": [c.pk for c in rows], "conversation": [c.pk for c in ticked],
                        **extra}, HTTP_HX_REQUEST="true")


def test_the_selection_survives_paging_and_filters_and_clears(owner_client, synced, settings):
    settings.LETHE_PAGE_SIZE = 5
    first = owner_client.get(URL).context["page"]
    bar = post_page(owner_client, first.rows, first.rows[:2]).content.decode()
    assert "2 selected" in bar
    second = owner_client.get(URL, {"after": first.next_cursor})
    post_page(owner_client, second.context["page"].rows, second.context["page"].rows[:1])
    again = owner_client.get(URL)  # back on page one: its two ticks are still there
    assert again.context["held_count"] == 3
    assert again.context["ticked"] == {c.pk for c in first.rows[:2]}
    char = synced.characters.order_by("id").first()
    filtered = owner_client.get(URL, {"character": char.pk})
    assert "3 selected" in filtered.content.decode()
    # Unticking on one page leaves the others' ticks alone.
    post_page(owner_client, first.rows, first.rows[:1])
    assert owner_client.get(URL).context["held_count"] == 2
    cleared = post_page(owner_client, [], [], action="clear").content.decode()
    assert "0 selected" in cleared and owner_client.get(URL).context["held_count"] == 0


def test_select_all_matching_is_used_once_then_said(owner_client, synced, settings):
    settings.LETHE_PAGE_SIZE = 5
    char = synced.characters.order_by("id").first()
    expected = synced.conversations.filter(character=char).count()
    page = owner_client.get(URL, {"character": char.pk, "part": "count"},
                            HTTP_HX_REQUEST="true").content.decode()
    assert f"Select all {expected} matching" in page
    response = owner_client.post(reverse("conversation_selection"),
                                 {"action": "all", "back": f"character={char.pk}&sort=title"})
    assert response["Location"] == f"{URL}?character={char.pk}&sort=title"
    after = owner_client.get(URL, {"character": char.pk, "sort": "title", "count": "1"})
    assert after.context["held_count"] == expected
    assert f"All {expected} matching are selected" in after.content.decode()
    assert "data-select-all" not in after.content.decode()
    # Unticking one of them takes it out, even though its filter was selected whole...
    rows = after.context["page"].rows
    back = f"character={char.pk}&sort=title"
    bar = post_page(owner_client, rows, rows[1:], back=back).content.decode()
    assert owner_client.get(URL).context["held_count"] == expected - 1
    # ...and the page stops saying all are selected: the match tools come back to count
    # again and offer "Select all" anew, without a reload.
    assert f"{expected - 1} selected" in bar and "are selected" not in bar
    tools = re.search(r'<div id="match-tools" class="list-tools" hx-swap-oob="outerHTML" '
                      r'hx-get="([^"]+)"', bar)
    assert tools and f"character={char.pk}" in tools.group(1)
    count = owner_client.get(URL, {"character": char.pk, "sort": "title", "part": "count"},
                             HTTP_HX_REQUEST="true").content.decode()
    assert f"Select all {expected} matching" in count
    # Ticks that change nothing of the kind leave the tools alone.
    assert "match-tools" not in post_page(owner_client, rows, rows[2:], back=back
                                          ).content.decode()


def test_select_all_of_another_filter_brings_back_only_what_it_matches(owner_client, synced):
    one, two = synced.characters.order_by("id")[:2]
    select = owner_client.post
    select(reverse("conversation_selection"), {"action": "all", "back": f"character={one.pk}"})
    rows = owner_client.get(URL, {"character": one.pk}).context["page"].rows
    unticked = rows[0]
    post_page(owner_client, rows, rows[1:])
    select(reverse("conversation_selection"), {"action": "all", "back": f"character={two.pk}"})
    chosen = set(selected(owner_client))
    assert unticked.pk not in chosen
    assert chosen == set(synced.conversations.filter(character__in=[one, two])
                         .exclude(pk=unticked.pk).values_list("pk", flat=True))
    # Its own filter selected whole again takes it back in.
    select(reverse("conversation_selection"), {"action": "all", "back": f"character={one.pk}"})
    assert unticked.pk in selected(owner_client)


def selected(client) -> list[int]:  # type: ignore[no-untyped-def]
    """What "Erase selected" would freeze: the conversations of the job it drafts."""
    client.post(reverse("erase_selected"), {"held": "1"})
    job = ErasureJob.objects.latest("pk")
    ids = list(job.items.values_list("conversation_id", flat=True).distinct())
    job.delete()
    return ids


def test_export_selected_gives_the_messages_of_exactly_the_selection(owner_client, synced):
    convs = list(synced.conversations.order_by("id")[:2])
    post_page(owner_client, convs, convs)
    jsonl = owner_client.post(reverse("conversation_selection_export", args=["jsonl"]))
    lines = [json.loads(line) for line in b"".join(jsonl.streaming_content).splitlines()]
    assert {line["conversation_id"] for line in lines} == {c.provider_id for c in convs}
    assert len(lines) == sum(c.messages.count() for c in convs)
    assert lines[0]["connection"] == synced.label and lines[0]["text"]
    csv_ = owner_client.post(reverse("conversation_selection_export", args=["csv"]))
    rows = list(csv.DictReader(io.StringIO(b"".join(csv_.streaming_content).decode())))
    assert len(rows) == len(lines) and rows[0]["conversation_id"] == lines[0]["conversation_id"]
    post_page(owner_client, [], [], action="clear")
    empty = owner_client.post(reverse("conversation_selection_export", args=["csv"]),
                              follow=True)
    assert "nothing to export" in empty.content.decode()


def test_erase_selected_previews_exactly_the_held_selection(owner_client, synced, settings):
    settings.LETHE_PAGE_SIZE = 5
    first = owner_client.get(URL).context["page"]
    post_page(owner_client, first.rows, first.rows[:1])
    second = owner_client.get(URL, {"after": first.next_cursor}).context["page"]
    # The form of page two is posted as it stands: one more ticked there.
    response = owner_client.post(reverse("erase_selected"), {
        "held": "1", "shown": [c.pk for c in second.rows], "conversation": [second.rows[0].pk]})
    job = ErasureJob.objects.get()
    assert response["Location"] == reverse("erase_preview", args=[job.request])
    assert set(job.items.values_list("conversation_id", flat=True)) == {
        first.rows[0].pk, second.rows[0].pk}


def test_a_forged_id_in_the_selection_is_a_clear_error(owner_client, synced):
    response = owner_client.post(reverse("conversation_selection"),
                                 {"shown": ["1", "x"], "conversation": ["x"]}, follow=True)
    assert "not a number" in response.content.decode()


def test_ids_someone_cannot_see_never_enter_their_selection(client, outsider, synced):
    client.force_login(outsider)
    ids = list(synced.conversations.values_list("pk", flat=True))
    bar = client.post(reverse("conversation_selection"),
                      {"shown": ids, "conversation": ids}, HTTP_HX_REQUEST="true")
    assert "0 selected" in bar.content.decode()
    export = client.post(reverse("conversation_selection_export", args=["jsonl"]))
    assert export.status_code == 302 and not hasattr(export, "streaming_content")


def test_select_all_with_search_text_keeps_ids_not_the_text(owner_client, synced):
    conv = synced.conversations.order_by("id").first()
    word = conv.messages.filter(is_human=True).first().text.split()[-1].strip("?.!,")
    expected = set(selection.matching(synced.owner, {"q": word})
                   .filter(mirror_state="present").values_list("pk", flat=True))
    owner_client.post(reverse("conversation_selection"), {"action": "all", "back": f"q={word}"})
    held = owner_client.session["lethe.conversation_selection"]
    assert word not in json.dumps(held)  # the search text is not kept, its matches are
    assert set(held["ids"]) == expected and held["filters"] == []
    again = owner_client.get(URL, {"q": word, "part": "count"}, HTTP_HX_REQUEST="true")
    assert f"All {len(expected)} matching are selected" in again.content.decode()
    # The job made of it says it was selected whole, not picked by hand.
    owner_client.post(reverse("erase_selected"), {"held": "1"})
    assert ErasureJob.objects.get().scope == {"select_all": True, "selected": len(expected)}


def test_a_job_counts_only_the_picks_that_could_be_erased(owner_client, synced):
    """An id that is not the person's (or no longer exists) is no pick: the job's
    "N picked by hand" counts what it holds."""
    mine = synced.conversations.order_by("id").first()
    owner_client.post(reverse("erase_selected"), {"conversation": [mine.pk, mine.pk + 10**6]})
    assert ErasureJob.objects.get().scope == {"select_all": False, "selected": 1}


def test_select_all_says_when_it_leaves_out_what_was_erased(owner_client, synced):
    """The count takes every listed conversation, erased ones too; "select all" takes only
    what can still be erased, and says so when the two differ."""
    from dashboard.mirror import purge

    purge.purge(conversations=[synced.conversations.order_by("id").first().pk])
    page = owner_client.get(reverse("conversations"), {"count": "1"}).content.decode()
    assert "12 conversations match." in page
    assert "Select all 11 matching not yet erased" in page
