"""The first hour of a new team member, in one walk through headless Chromium: first
arrival on an empty overview, a sync, a filter, a selection made over two pages, the
preview, the erasure and its receipt. At every step the page has no script error, axe-core
finds nothing serious, and each number shown is the one in the database."""

from __future__ import annotations

import re

import pytest

from dashboard.models import (
    Character,
    Conversation,
    ErasureItem,
    ErasureJob,
    Message,
    MirrorState,
)
from tests.views.test_browser import (  # noqa: F401 - browser is a fixture
    accessibility_problems,
    browser,
    signed_in_page,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def number(page, selector: str) -> int:  # type: ignore[no-untyped-def]
    return int(re.sub(r"\D", "", page.inner_text(selector)))


def test_first_arrival_sync_filter_select_over_pages_preview_erase_and_receipt(
    browser, live_server, owner, connection, convai_fake, celery_worker, settings  # noqa: F811
):
    settings.LETHE_PAGE_SIZE = 3
    settings.LETHE_CANCEL_WINDOW = 0
    page, errors = signed_in_page(browser, live_server, owner)
    problems: list[str] = []

    # First arrival: nothing held, and the page says what to do next.
    assert "Next: sync Team Convai" in page.inner_text("[data-next-step]")
    assert page.inner_text('[data-total="conversations"]') == "0"
    problems += accessibility_problems(page)

    # Sync from the overview; its live region follows the sync to its end.
    page.click(f"form[action='/connections/{connection.pk}/sync/'] button")
    page.wait_for_selector("svg.chart", timeout=60_000)
    held = Conversation.objects.filter(connection=connection)
    assert number(page, '[data-total="conversations"]') == held.count() == 12
    assert number(page, '[data-total="messages"]') == Message.objects.filter(
        conversation__connection=connection).count()
    assert number(page, '[data-total="characters"]') == Character.objects.filter(
        connection=connection).count()
    problems += accessibility_problems(page)

    # Filter by a character; the count shown is the database's.
    page.click("nav >> text=Conversations")
    character = Character.objects.filter(connection=connection).order_by("name").first()
    page.select_option("#id_character", label=character.name)
    page.click("#filters button[type=submit]")
    of_character = held.filter(character=character)
    page.wait_for_selector(f"#match-count >> text=/^{of_character.count()} conversation/")
    assert of_character.count() > 3  # more than a page, so the selection spans two
    shown = page.locator("input[data-row]")
    assert shown.count() == 3
    problems += accessibility_problems(page)

    # Two on the first page, one on the next: the selection is held across pages.
    chosen = [int(shown.nth(i).get_attribute("value")) for i in (0, 1)]
    shown.nth(0).click()
    shown.nth(1).click()
    page.wait_for_selector("[data-selection-count] >> text='2 selected'")
    page.click("text=Next →")
    page.wait_for_selector(f"input[data-row][value='{chosen[0]}']", state="detached")
    chosen.append(int(shown.nth(0).get_attribute("value")))
    shown.nth(0).click()
    page.wait_for_selector("[data-selection-count] >> text='3 selected'")
    assert set(held.filter(pk__in=chosen).values_list("character", flat=True)) == {
        character.pk}

    # The preview's count is what was frozen, and what is sent.
    page.click("button[data-erase]")
    page.wait_for_selector("text=Review what will be erased")
    frozen = ErasureItem.objects.filter(job__request=ErasureJob.objects.get().request)
    assert number(page, "[data-total]") == frozen.count() == 3
    assert set(frozen.values_list("provider_id", flat=True)) == set(
        held.filter(pk__in=chosen).values_list("provider_id", flat=True))
    problems += accessibility_problems(page)

    page.click("button[value=erase]")
    page.wait_for_selector("#job-status[data-job-status=done]", timeout=60_000)
    job = ErasureJob.objects.get()
    verified = job.items.filter(state="verified").count()
    assert verified == 3
    assert f"Erased and verified: {verified}" in page.inner_text("#job-status")
    problems += accessibility_problems(page)

    # The receipt, and the provider and the mirror agree with it.
    page.click("a:text-is('Receipt')")
    page.wait_for_selector("h1 >> text=Receipt for job")
    assert page.locator("table.grid tbody tr").count() == job.items.count() == 3
    assert f"{verified} verified" in page.inner_text("dl.facts").lower()
    problems += accessibility_problems(page)

    erased = set(held.filter(pk__in=chosen).values_list("provider_id", flat=True))
    at_provider = {s for c in convai_fake.character_ids() for s in convai_fake.session_ids(c)}
    assert not erased & at_provider
    assert held.filter(pk__in=chosen, mirror_state=MirrorState.ERASED).count() == 3
    assert not Message.objects.filter(conversation__in=chosen).exclude(text="").exists()

    page.goto(f"{live_server.url}/")
    assert number(page, '[data-total="conversations"]') == held.filter(
        mirror_state=MirrorState.PRESENT).count() == 9
    problems += accessibility_problems(page)
    assert not errors, errors
    assert not problems, "\n".join(problems)
