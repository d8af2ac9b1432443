"""End to end in headless Chromium: sign in, sync, pick three sessions with the mouse, erase
them, watch the progress bar finish, and check the Convai fake no longer has them."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator

import pytest

from dashboard.models import Conversation, ErasureJob
from tests.helpers import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("LETHE_CHROMIUM", "/usr/bin/chromium")
# Flags that keep Chromium from calling out to the internet on a closed network.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run make test (it installs it) "
                    "or set LETHE_CHROMIUM.")
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the test makes
    # between browser steps are ordinary blocking calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


def test_sign_in_sync_select_three_erase_and_watch_it_finish(
    browser, live_server, owner, connection, convai_fake, celery_worker
):
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.set_default_timeout(20_000)

    page.goto(f"{live_server.url}/connections/{connection.pk}/")
    page.fill("#id_username", owner.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    page.click("text=Sync now")
    page.wait_for_selector("#sync-status .banner-success")
    assert "12 conversations" in page.inner_text("#sync-status")

    page.click("nav >> text=Conversations")
    boxes = page.locator("input[data-row]")
    boxes.nth(0).click()
    boxes.nth(2).click(modifiers=["Shift"])  # a shift-click selects the range between
    # The selection is held on the server, which counts it.
    page.wait_for_selector("[data-selection-count] >> text='3 selected'")
    chosen = [int(boxes.nth(i).get_attribute("value")) for i in range(3)]
    assert all(boxes.nth(i).is_checked() for i in range(3)) and not boxes.nth(3).is_checked()

    page.click("button[data-erase]")
    page.wait_for_selector("text=Review what will be erased")
    page.click("button[value=erase]")

    page.wait_for_selector("#job-status[data-job-status=done]")
    progress = page.locator("#job-status progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "3"
    assert "Erased and verified: 3" in page.inner_text("#job-status")
    assert not errors, errors

    erased = set(Conversation.objects.filter(pk__in=chosen).values_list("provider_id", flat=True))
    still_there = {s for c in convai_fake.character_ids() for s in convai_fake.session_ids(c)}
    assert erased and not erased & still_there
    assert ErasureJob.objects.get().status == "done"


def accessibility_problems(page) -> list[str]:  # type: ignore[no-untyped-def]
    """What axe-core (bundled with axe-playwright-python) finds serious or critical on the
    page as it is now, one line per rule and element."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{page.url}: {v['id']} ({v['impact']}): {v['help']} at {n['target']}"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")
            for n in v["nodes"]]


def test_every_screen_renders_in_the_browser_without_script_policy_or_axe_errors(
    browser, live_server, owner, synced
):
    """Console errors catch what a server-side test cannot: a CSP violation (an inline
    script or style slipped in), a missing static file, a script error. axe-core checks
    each screen for serious or critical accessibility faults."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{page.url}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
    problems: list[str] = []
    page.goto(f"{live_server.url}/accounts/login/")
    problems += accessibility_problems(page)
    page.fill("#id_username", owner.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    conv = synced.conversations.first()
    word = conv.messages.filter(is_human=True).first().text.split()[0]
    for path in ["/", "/connections/", f"/connections/{synced.pk}/", "/connections/add/",
                 "/conversations/", f"/conversations/{conv.pk}/", "/jobs/",
                 f"/search/?q={word}", "/policies/", "/policies/add/"]:
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 200, path
        assert page.locator("main h1").count() >= 1, path
        problems += accessibility_problems(page)
    page.goto(f"{live_server.url}/conversations/")
    page.locator("input[data-select-page]").click()
    page.wait_for_selector("button[data-select-all]")
    # Selected whole, then one unticked: the page stops saying all are selected and offers
    # "Select all" again, counted anew, without a reload.
    page.click("button[data-select-all]")
    page.wait_for_selector("[data-all-selected]")
    page.locator("input[name=conversation]").first.click()
    page.wait_for_selector("button[data-select-all]")
    assert page.locator("[data-all-selected]").count() == 0
    assert not errors, errors
    assert not problems, "\n".join(problems)


@pytest.fixture
def pinned_chat(owner):  # type: ignore[no-untyped-def]
    """A Character.AI connection of two chats, the first holding one pinned message."""
    from dashboard.mirror import sync
    from dashboard.models import Message
    from providers.fakes.characterai import CharacterAIFake
    from tests.helpers import connect

    fake = CharacterAIFake(seed=9, characters=1, chats=2, turns=(5, 5), archived=0, pinned=0)
    with fake.serve() as server:
        connection = connect(owner, fake, server.url)
        assert sync.perform_sync(sync.start(connection).pk).status == "ok"
        conv = connection.conversations.order_by("id").first()
        pinned = conv.messages.order_by("position")[1]
        with fake.lock:
            next(t for t in fake.find_chat(conv.provider_id).turns
                 if t.id == pinned.provider_id).pinned = True
        Message.objects.filter(pk=pinned.pk).update(pinned=True)
        yield fake, connection, conv


def test_the_count_follows_the_pinned_checkbox_and_a_dry_run_leads_to_the_real_one(
    browser, live_server, owner, pinned_chat, celery_worker
):
    fake, connection, conv = pinned_chat
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/conversations/")
    page.fill("#id_username", owner.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.locator("input[data-row]").nth(0).click()
    page.locator("input[data-row]").nth(1).click()
    page.click("button[data-erase]")
    page.wait_for_selector("text=Review what will be erased")
    # Kept: the other chat whole, and the four other messages of the pinned one.
    assert page.inner_text("button[value=erase]") == "Erase 5 at the provider"
    page.check("input[name=include_pinned]")
    page.wait_for_selector("button[value=erase] >> text=Erase 2 at the provider")
    assert "pinned messages included" in page.inner_text("#decision")
    page.uncheck("input[name=include_pinned]")
    page.wait_for_selector("button[value=erase] >> text=Erase 5 at the provider")
    page.click("button[value=dry_run]")
    page.wait_for_selector("#job-status[data-job-status=done]")
    assert "Would be erased (dry run): 5" in page.inner_text("#job-status")
    assert len(fake.message_ids(conv.provider_id)) == 5  # nothing was sent
    page.click("text=Erase these 5 for real…")
    page.wait_for_selector("text=Review what will be erased")
    assert page.inner_text("button[value=erase]") == "Erase 5 at the provider"
    page.click("button[value=erase]")
    page.wait_for_selector("#job-status[data-job-status=done]")
    assert "Erased and verified: 5" in page.inner_text("#job-status")
    pinned = conv.messages.get(pinned=True)
    assert fake.message_ids(conv.provider_id) == [pinned.provider_id]
    assert not errors, errors


def signed_in_page(browser, live_server, owner, **context):  # type: ignore[no-untyped-def]
    """A page signed in as ``owner`` (``context``: browser-context options such as
    ``timezone_id``), and the list its console errors are collected in."""
    page = browser.new_page(**context)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{page.url}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", owner.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("main h1")
    return page, errors


def test_first_arrival_then_a_sync_whose_counts_grow_and_whose_end_redraws_the_page(
    browser, live_server, owner, connection, convai_fake, celery_worker, settings
):
    """An instance with one connection never synced: the overview says what to do next
    and holds no empty chart; the sync's counts appear while it runs (beats every 0.5 s,
    one request at a time to a slow fake) and its end redraws the status, characters and
    recent syncs without a reload."""
    from dashboard.models import Character, Message

    settings.LETHE_STUCK_AFTER = 2
    settings.LETHE_SYNC_CONCURRENCY = 1
    convai_fake.latency = 0.3
    page, errors = signed_in_page(browser, live_server, owner)
    problems = accessibility_problems(page)
    assert "Next: sync Team Convai" in page.inner_text("[data-next-step]")
    assert page.locator("svg.chart").count() == 0
    assert page.inner_text('[data-total="conversations"]') == "0"

    page.goto(f"{live_server.url}/connections/{connection.pk}/")
    assert "No characters mirrored yet" in page.inner_text("#characters")
    assert "No syncs yet" in page.inner_text("#runs")
    page.click("text=Sync now")
    # The section's text as it is when the first conversations are read (the same moment,
    # so the poll that finds the sync finished cannot come in between).
    running = page.wait_for_function(
        "() => Number(document.querySelector('[data-sync-count=read]')?.textContent) > 0"
        " && document.querySelector('#sync-status').innerText").json_value()
    assert "of 12 read" in running and "requests sent" in running
    problems += accessibility_problems(page)

    page.wait_for_selector("#sync-status .banner-success")
    assert "12 conversations" in page.inner_text("#sync-status")
    characters = page.inner_text("#characters")
    assert "No characters mirrored yet" not in characters
    assert page.locator("#characters tbody tr").count() == Character.objects.count() == 2
    assert page.locator("#runs tbody tr").count() == 1 and "No syncs yet" not in page.content()
    assert page.get_attribute("[data-connection-status]", "data-connection-status") == "ok"
    problems += accessibility_problems(page)

    page.goto(f"{live_server.url}/")
    assert page.inner_text('[data-total="conversations"]') == "12"
    assert page.inner_text('[data-total="messages"]') == str(
        Message.objects.filter(conversation__connection=connection).count())
    assert page.locator("svg.chart").count() == 1  # the connection's age chart
    problems += accessibility_problems(page)
    assert not errors, errors
    assert not problems, "\n".join(problems)


def test_a_wrong_key_saved_unchecked_reads_invalid_once_tested(
    browser, live_server, owner, convai_server
):
    page, errors = signed_in_page(browser, live_server, owner)
    page.goto(f"{live_server.url}/connections/add/?provider=convai")
    page.fill("#id_label", "Wrong key")
    page.fill("#id_secret_api_key", "wrong-key-0000000000000000")
    page.fill("#id_option_base_url", convai_server.url)
    page.click("button.primary")
    assert "refused the key" in page.inner_text(".banner-error")  # nothing saved
    problems = accessibility_problems(page)

    page.fill("#id_secret_api_key", "wrong-key-0000000000000000")
    page.check("#id_skip_check")
    page.click("button.primary")
    status = page.locator("[data-connection-status]")
    assert status.inner_text() == "Not checked yet"
    page.click("button:text-is('Test')")
    page.wait_for_selector("[data-connection-status=invalid]")
    assert "refused the key ending …0000" in page.inner_text("#connection-status")
    assert "Invalid key" in page.inner_text("#connection-status")
    problems += accessibility_problems(page)
    assert not errors, errors
    assert not problems, "\n".join(problems)


def test_the_overview_follows_a_sync_started_from_it_without_a_reload(
    browser, live_server, owner, connection, convai_fake, celery_worker, settings
):
    settings.LETHE_SYNC_CONCURRENCY = 1
    convai_fake.latency = 0.2  # the sync outlasts the redirect back to the overview
    page, errors = signed_in_page(browser, live_server, owner)
    page.click(f"form[action='/connections/{connection.pk}/sync/'] button")
    page.wait_for_selector("#overview-live[data-sync-running]")  # a sync runs: it polls
    page.evaluate("window.lethe_no_reload = true")  # gone if the page were loaded again
    # The sync is slow on purpose, one request at a time; on a machine also running the
    # system suite it has taken more than the default 20 s to end.
    page.wait_for_selector("svg.chart", timeout=90_000)
    assert page.evaluate("window.lethe_no_reload") is True
    # Done: the fast polling stopped; only the idle "has anything moved?" is left.
    assert page.locator("#overview-live[data-sync-running]").count() == 0
    assert page.locator("#overview-live[hx-trigger='every 10s']").count() == 1
    assert page.inner_text('[data-total="conversations"]') == "12"
    assert "last synced" in page.inner_text(f"[data-connection='{connection.pk}']")
    problems = accessibility_problems(page)
    assert not errors, errors
    assert not problems, "\n".join(problems)


def test_the_job_page_and_receipt_read_in_the_browsers_zone_with_one_live_line(
    browser, live_server, owner, synced
):
    from dashboard.erasure import freeze, lifecycle, worker

    three = synced.conversations.order_by("id").values("pk")[:3]
    request_id = freeze.conversations(owner, synced.conversations.filter(pk__in=three), {})
    job = lifecycle.confirm(ErasureJob.objects.filter(request=request_id), dry_run=False,
                            enqueue=False)[0]
    page, errors = signed_in_page(browser, live_server, owner, timezone_id="Asia/Tokyo")
    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    assert page.inner_text("#job-live") == "Queued"
    page.evaluate("window.liveLine = document.getElementById('job-live')")
    # In a thread of its own: this one runs Playwright's event loop.
    run = threading.Thread(target=worker.work_job, args=(job.pk,))
    run.start()
    run.join()
    page.wait_for_selector("#job-status[data-job-status=done]")
    page.wait_for_function(
        "document.getElementById('job-live').innerText === 'Finished: 3 verified'")
    # Rewritten in place, never replaced: a screen reader hears the change.
    assert page.evaluate("window.liveLine === document.getElementById('job-live')")
    # The sign-in page's script told the server the zone: every time is Tokyo time.
    zones = set(page.locator("time .tz").all_inner_texts())
    assert zones == {"JST"}, (zones, page.evaluate("document.cookie"), errors)
    live = page.locator("[aria-live]")
    assert live.count() == 1
    assert live.evaluate("e => e.matches('p.statusline')")
    assert live.inner_text() == "Finished: 3 verified"
    problems = accessibility_problems(page)
    page.click("text=Receipt")
    page.wait_for_selector("h1 >> text=Receipt for job")
    assert "Erased and verified" in page.inner_text("table")
    assert "Times are in Asia/Tokyo" in page.inner_text("main")
    problems += accessibility_problems(page)
    page.goto(f"{live_server.url}/jobs/")
    assert page.inner_text("td[data-outcome]") == "3 verified"
    problems += accessibility_problems(page)
    # On a phone the header row is hidden; each cell names its column.
    page.set_viewport_size({"width": 390, "height": 800})
    assert page.evaluate("getComputedStyle(document.querySelector('td[data-outcome]'), "
                         "'::before').content") == '"Outcome: "'
    problems += accessibility_problems(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    # A zone chosen for this browser holds: the script no longer follows the browser's.
    page.goto(f"{live_server.url}/time-zone/?next=/jobs/")
    problems += accessibility_problems(page)
    page.select_option("select[name=zone]", "Europe/Paris")
    page.click("main button[type=submit]")
    page.wait_for_url("**/jobs/")
    page.reload()
    assert set(page.locator("time .tz").all_inner_texts()) == {"CET"}
    assert not errors, errors
    assert not problems, "\n".join(problems)


def test_the_policy_form_shows_only_the_field_its_scope_uses(browser, live_server, owner,
                                                             synced):
    page, errors = signed_in_page(browser, live_server, owner)
    page.goto(f"{live_server.url}/policies/add/")
    field = {name: page.locator(f"[data-for-scope={name}]")
             for name in ("provider", "connection", "character")}
    assert page.input_value("select[name=scope]") == "connection"
    assert [f.is_visible() for f in field.values()] == [False, True, False]
    problems = accessibility_problems(page)
    page.select_option("select[name=scope]", "provider")
    assert [f.is_visible() for f in field.values()] == [True, False, False]
    page.select_option("select[name=scope]", "all")
    assert not any(f.is_visible() for f in field.values())
    page.select_option("select[name=scope]", "character")
    assert [f.is_visible() for f in field.values()] == [False, False, True]
    problems += accessibility_problems(page)
    page.fill("input[name=name]", "Old chats")
    page.select_option("select[name=character]", index=1)
    page.click("form[data-policy-form] button[type=submit]")
    page.wait_for_selector("h1 >> text=Policy: Old chats")
    assert "due now" in page.inner_text("dl.facts")
    problems += accessibility_problems(page)
    assert not errors, errors
    assert not problems, "\n".join(problems)


def test_findings_are_listed_masked_revealed_on_request_and_erased_from_the_screen(
    browser, live_server, owner, planted_cai, planted, planted_fake, celery_worker
):
    from dashboard.models import AuditEvent, Finding
    from providers.fakes.planted import PLANTED

    page, errors = signed_in_page(browser, live_server, owner)
    page.goto(f"{live_server.url}/findings/")
    page.wait_for_selector("main h1 >> text=Findings")
    problems = accessibility_problems(page)
    assert page.locator("table.grid tbody tr").count() == len(PLANTED)
    assert not [v for v, _ in PLANTED.values() if v in page.content()]

    card = Finding.objects.get(kind="card")
    page.click(f"a[href$='#finding-{card.pk}']")
    page.wait_for_selector(f"mark.finding.current#finding-{card.pk}")
    problems += accessibility_problems(page)
    assert PLANTED["card"][0] not in page.content()
    page.click(f"button[form=reveal-{card.pk}]")
    page.wait_for_selector(f"#text-{card.message_id} >> text={PLANTED['card'][0]}")
    assert AuditEvent.objects.filter(action="finding_revealed", object_id=str(card.pk)).exists()

    page.goto(f"{live_server.url}/findings/")
    page.select_option("#id_kind", "secret")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("caption >> text=1 finding")
    page.click("text=Erase these messages…")
    page.wait_for_selector("text=Review what will be erased")
    problems += accessibility_problems(page)
    page.click("button[value=erase]")
    page.wait_for_selector("#job-status[data-job-status=done]")
    assert "Erased and verified: 1" in page.inner_text("#job-status")
    chat_ids = {c.provider_id for c in planted_cai.conversations.all()}
    left = {m for chat in chat_ids for m in planted_fake.message_ids(chat)}
    assert planted["secret"] not in left and planted["card"] in left
    page.goto(f"{live_server.url}/findings/")
    assert page.locator("table.grid tbody tr").count() == len(PLANTED) - 1
    assert not Finding.objects.filter(kind="secret").exists()
    assert not errors, errors
    assert not problems, "\n".join(problems)


def test_no_screen_is_wider_than_a_phone(browser, live_server, owner, synced):
    """At 390 px nothing makes the page scroll sideways: a wide select, a form field or a
    table of long values stays within the screen (tables scroll inside themselves)."""
    from tests.helpers import with_role

    with_role(owner, "admin")  # the audit trail is theirs to read
    page, errors = signed_in_page(browser, live_server, owner,
                                  viewport={"width": 390, "height": 844})
    conv = synced.conversations.first()
    wide = []
    for path in ["/", f"/connections/{synced.pk}/", "/conversations/",
                 f"/conversations/{conv.pk}/", "/findings/", "/jobs/", "/policies/add/",
                 "/audit/", "/search/?q=hello"]:
        page.goto(f"{live_server.url}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            wide.append(f"{path}: {width} px")
    assert not wide, wide
    assert not errors, errors
