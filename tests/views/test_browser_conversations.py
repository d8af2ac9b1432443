"""The conversation list in headless Chromium, at 1280 and 390 px: a selection kept across
pages, exported and cleared, the keyboard path to its actions, the character filter
following the connection, a bad date listing nothing; axe-core finds nothing serious on
any of these states."""

from __future__ import annotations

import json

import pytest

from dashboard.models import Conversation
from tests.views.test_browser import (  # noqa: F401 - browser is a fixture
    accessibility_problems,
    browser,
    signed_in_page,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def signed_in(chromium, live_server, owner, **context):  # type: ignore[no-untyped-def]
    """A page signed in as `owner` on the conversation list; its script errors collect
    in ``page.errors``."""
    page, errors = signed_in_page(chromium, live_server, owner, **context)
    page.errors = errors
    page.goto(f"{live_server.url}/conversations/")
    page.wait_for_selector("h1 >> text=Conversations")
    return page


def count_is(page, text: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector(f"[data-selection-count] >> text='{text}'")


def test_a_selection_is_kept_across_pages_exported_and_cleared(
        browser, live_server, owner, synced, settings):  # noqa: F811
    settings.LETHE_PAGE_SIZE = 5
    page = signed_in(browser, live_server, owner)
    problems = accessibility_problems(page)
    boxes = page.locator("input[data-row]")
    chosen = [int(boxes.nth(i).get_attribute("value")) for i in range(2)]
    boxes.nth(0).click()
    boxes.nth(1).click()
    count_is(page, "2 selected")
    # The count is told to screen readers through a live region that is never replaced.
    assert page.inner_text("#selection-announce") == "2 selected"
    page.click("text=Next →")
    page.wait_for_selector(f"input[data-row][value='{chosen[0]}']", state="detached")
    chosen.append(int(boxes.nth(0).get_attribute("value")))
    boxes.nth(0).click()
    count_is(page, "3 selected")
    problems += accessibility_problems(page)
    page.click("text=← Previous")
    page.wait_for_selector(f"input[data-row][value='{chosen[0]}']")
    assert boxes.nth(0).is_checked() and boxes.nth(1).is_checked()
    assert not boxes.nth(2).is_checked()

    # The keyboard path: the skip link, then Tab lands on the first action.
    page.focus("a.skip[href='#selection-bar']")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Clear selection"

    with page.expect_download() as download:
        page.click("button[data-export=jsonl]")
    lines = [json.loads(line) for line in
             open(download.value.path(), encoding="utf-8").read().splitlines()]
    chosen_ids = set(Conversation.objects.filter(pk__in=chosen)
                     .values_list("provider_id", flat=True))
    assert {line["conversation_id"] for line in lines} == chosen_ids
    count_is(page, "3 selected")

    page.click("button[data-clear]")
    count_is(page, "0 selected")
    assert not page.locator("input[data-row]:checked").count()
    assert page.locator("button[data-erase]").is_disabled()
    problems += accessibility_problems(page)
    assert not page.errors, page.errors
    assert not problems, "\n".join(problems)


def test_the_character_filter_follows_the_connection(
        browser, live_server, owner, synced, second):  # noqa: F811
    mine = synced.characters.order_by("id").first()
    theirs = second.characters.order_by("id").first()
    page = signed_in(browser, live_server, owner)
    assert page.locator("th >> text=Connection").count() == 1  # two connections in view
    page.select_option("#id_connection", str(synced.pk))
    page.wait_for_selector(f"#id_character option[value='{theirs.pk}']", state="detached")
    assert page.locator(f"#id_character option[value='{mine.pk}']").count() == 1
    page.select_option("#id_character", str(mine.pk))
    page.click("#filters button[type=submit]")
    page.wait_for_selector(".chips")
    expected = synced.conversations.filter(character=mine).count()
    assert page.locator("input[data-row]").count() == expected
    page.wait_for_selector(f"#match-count >> text='{expected} conversations match this filter.'")
    problems = accessibility_problems(page)

    # Switching the connection swaps the characters: the old one cannot stick.
    page.select_option("#id_connection", str(second.pk))
    page.wait_for_selector(f"#id_character option[value='{theirs.pk}']", state="attached")
    assert page.input_value("#id_character") == ""
    page.click("#filters button[type=submit]")
    page.wait_for_selector(f"input[data-row][value='{second.conversations.first().pk}']")
    assert page.locator("input[data-row]").count() == second.conversations.count()

    # A chip removes its own filter.
    page.click(".chips a.chip")
    page.wait_for_selector(".chips", state="detached")
    assert page.locator("input[data-row]").count() == Conversation.objects.count()
    problems += accessibility_problems(page)
    assert not page.errors, page.errors
    assert not problems, "\n".join(problems)


def test_a_from_date_after_the_to_date_lists_nothing(browser, live_server, owner, synced):  # noqa: F811
    page = signed_in(browser, live_server, owner)
    page.fill("#id_start", "2025-02-01")
    page.fill("#id_end", "2025-01-01")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("text=The From date is after the To date.")
    assert page.locator("input[data-row]").count() == 0
    assert "Correct the filter above" in page.inner_text("#results")
    problems = accessibility_problems(page)
    assert not page.errors, page.errors
    assert not problems, "\n".join(problems)


def test_on_a_phone_the_selection_controls_are_reachable_and_values_labelled(
        browser, live_server, owner, synced, settings):  # noqa: F811
    settings.LETHE_PAGE_SIZE = 5
    page = signed_in(browser, live_server, owner, viewport={"width": 390, "height": 844})
    assert not page.locator("table.grid thead").is_visible()  # the header is hidden here
    first_row = page.locator("table.grid tbody tr").first
    text = first_row.inner_text()
    assert "Messages:" in text and "Last:" in text and "Character:" in text
    page.check("input[data-select-page]")
    count_is(page, "5 selected")
    total = Conversation.objects.filter(mirror_state="present").count()
    select_all = page.locator("button[data-select-all]")
    select_all.wait_for()  # the count arrives after the page
    assert select_all.is_visible()
    select_all.click()
    page.wait_for_selector(f"text=All {total} matching are selected.")
    count_is(page, f"{total} selected")
    erase = page.locator("button[data-erase]")
    erase.scroll_into_view_if_needed()
    assert erase.is_visible() and erase.is_enabled()
    problems = accessibility_problems(page)
    assert not page.errors, page.errors
    assert not problems, "\n".join(problems)
