"""The jobs list, a job's page and its receipt as people read them: outcomes in words,
items paged under their filter, one live status line, times in the viewer's zone."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboard.erasure import freeze, lifecycle, worker
from dashboard.lib.timezones import COOKIE, FIXED
from dashboard.models import Conversation, ErasureItem, ErasureJob, RetentionPolicy

pytestmark = pytest.mark.django_db

ROW = '<tr><td data-label="Kind">Conversation</td>'  # one row of the item table
MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def erase(synced, n: int = 2, dry_run: bool = False, scope: dict | None = None,
          ) -> ErasureJob:
    """A job over the next ``n`` conversations nobody erased yet, worked to its end."""
    chosen = synced.conversations.filter(pk__in=synced.conversations.filter(
        mirror_state="present").order_by("id").values("pk")[:n])
    request_id = freeze.conversations(synced.owner, chosen, scope or {})
    job = lifecycle.confirm(ErasureJob.objects.filter(request=request_id), dry_run=dry_run,
                            enqueue=False)[0]
    worker.work_job(job.pk)
    return ErasureJob.objects.get(pk=job.pk)


def outcome_cell(page: str, job: ErasureJob) -> str:
    row = re.search(rf'href="/jobs/{job.pk}/">#{job.pk}</a>.*?</tr>', page, re.S)
    assert row, page
    cell = re.search(r'<td data-label="Outcome" data-outcome>(.*?)</td>', row.group(0))
    assert cell
    return cell.group(1)


def test_the_jobs_list_says_what_each_job_came_to(owner_client, synced):
    done = erase(synced, 2)
    rehearsal = erase(synced, 1, dry_run=True)
    nothing = erase(synced, 1)
    # A finished job whose items all failed must not read as a plain "Finished".
    ErasureItem.objects.filter(job=nothing).update(state=ErasureItem.State.FAILED)
    page = owner_client.get(reverse("jobs")).content.decode()
    assert outcome_cell(page, done) == "2 verified"
    assert outcome_cell(page, rehearsal) == "1 would be erased"
    assert outcome_cell(page, nothing) == "1 failed"


def many_items(job: ErasureJob, n: int, state: str) -> None:
    ErasureItem.objects.bulk_create([
        ErasureItem(job=job, kind="conversation", provider_id=f"extra-{state}-{i}",
                    conversation_provider_id=f"extra-{state}-{i}",
                    idempotency_key=f"{job.pk}:extra-{state}-{i}", state=state)
        for i in range(n)])


def test_the_item_table_is_paged_under_its_filter(owner_client, synced):
    job = erase(synced, 2)
    many_items(job, 100, ErasureItem.State.VERIFIED)
    many_items(job, 18, ErasureItem.State.FAILED)
    url = reverse("job", args=[job.pk])
    page = owner_client.get(url).content.decode()
    assert page.index('name="state"') < page.index('<table class="grid" aria-labelledby')
    assert "Items 1–50 of 120 (page 1 of 3)" in page
    assert page.count(ROW) == 50
    last = owner_client.get(url, {"page": 3}).content.decode()
    assert "Items 101–120 of 120" in last and last.count(ROW) == 20
    failed = owner_client.get(url, {"state": "failed"}).content.decode()
    assert failed.count(ROW) == 18 and 'class="pager"' not in failed
    # Out of range or nonsense: the nearest real page, not an error.
    assert "page 3 of 3" in owner_client.get(url, {"page": 99}).content.decode()
    assert "page 1 of 3" in owner_client.get(url, {"page": "x"}).content.decode()


def test_only_the_short_status_line_is_live(owner_client, synced):
    request_id = freeze.conversations(synced.owner, synced.conversations.all(), {})
    job = lifecycle.confirm(ErasureJob.objects.filter(request=request_id), dry_run=False,
                            enqueue=False)[0]
    url = reverse("job", args=[job.pk])
    page = owner_client.get(url).content.decode()
    assert page.count("aria-live") == 1
    live = re.search(r'<p class="statusline" id="job-live" aria-live="polite">(.*?)</p>', page)
    assert live and ">Queued</span>" in live.group(1)
    # The polled block holds neither the live line nor the item table.
    status = owner_client.get(url, {"shown": "queued"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in status and "<table" not in status
    assert "job-live" not in status and "aria-live" not in status
    items = owner_client.get(url, {"part": "items"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<table" in items and "aria-live" not in items and 'hx-trigger="every 5s"' in items
    worker.work_job(job.pk)
    done = owner_client.get(url, {"shown": "queued"}, HTTP_HX_REQUEST="true").content.decode()
    assert "every 1s" not in done
    # Its words changed, so the live line is rewritten in place, once.
    n = synced.conversations.count()
    assert re.search(rf'<p id="job-live" hx-swap-oob="innerHTML">.*Finished</span>: {n} '
                     r"verified</p>", done)
    again = owner_client.get(url, {"shown": f"done: {n} verified"},
                             HTTP_HX_REQUEST="true").content.decode()
    assert "job-live" not in again


def test_the_requesters_page_drops_the_approval_section_once_approved(
        owner_client, synced, settings, django_user_model):
    """Polling the status after someone approved rewrites the facts (who approved) and
    removes "What approving sends" with its sample, without a reload."""
    from tests.helpers import share, with_role

    settings.LETHE_APPROVAL_ALL = True
    settings.LETHE_CANCEL_WINDOW = 600
    request_id = freeze.conversations(synced.owner, synced.conversations.all(), {})
    [job] = lifecycle.confirm(ErasureJob.objects.filter(request=request_id), dry_run=False,
                              enqueue=False)
    url = reverse("job", args=[job.pk])
    page = owner_client.get(url).content.decode()
    assert "What approving sends" in page and "Approved by" not in page
    waiting = owner_client.get(url, {"shown": "awaiting_approval"},
                               HTTP_HX_REQUEST="true").content.decode()
    assert "job-facts" not in waiting and "job-approval" not in waiting  # nothing changed
    approver = django_user_model.objects.create_user("approver", password="x-appr-123")
    share(synced, approver)
    lifecycle.approve(job, with_role(approver, "approver"), enqueue=False)
    status = owner_client.get(url, {"shown": "awaiting_approval"},
                              HTTP_HX_REQUEST="true").content.decode()
    facts = re.search(r'<dl class="facts" id="job-facts" hx-swap-oob="outerHTML">(.*?)</dl>',
                      status, re.S)
    assert facts and "Approved by</dt><dd>approver" in facts.group(1)
    assert '<div id="job-approval" hx-swap-oob="outerHTML"></div>' in status
    assert "What approving sends" not in status


def test_times_are_shown_in_the_viewers_zone_with_the_zone(owner_client, synced):
    job = erase(synced, 1)
    ErasureJob.objects.filter(pk=job.pk).update(created_at=MOMENT)
    url = reverse("job", args=[job.pk])
    owner_client.cookies[COOKIE] = "Asia/Tokyo"
    page = owner_client.get(url).content.decode()
    assert '2026-01-02 12:04 <span class="tz">JST</span>' in page
    owner_client.cookies[COOKIE] = "America%2FNew_York"  # as lethe.js writes it
    page = owner_client.get(url).content.decode()
    assert '2026-01-01 22:04 <span class="tz">EST</span>' in page
    # Not a zone: the server's zone (UTC here), never an error.
    owner_client.cookies[COOKIE] = "../../etc/passwd"
    page = owner_client.get(url).content.decode()
    assert '2026-01-02 03:04 <span class="tz">UTC</span>' in page


def test_the_receipt_reads_in_words_and_local_times_while_its_json_keeps_values(
        owner_client, synced):
    job = erase(synced, 2)
    ErasureJob.objects.filter(pk=job.pk).update(created_at=MOMENT)
    owner_client.cookies[COOKIE] = "Europe/Berlin"
    page = owner_client.get(reverse("job_receipt", args=[job.pk])).content.decode()
    assert "Erased and verified" in page and ">verified<" not in page
    assert "2 verified" in page and "Times are in Europe/Berlin" in page
    assert '2026-01-02 04:04 <span class="tz">CET</span>' in page
    assert "nobody (no approval was needed)" in page
    # Whole ids, and what each outcome present means, for a reader outside the team.
    item = job.items.first()
    assert f'<code class="id full">{item.provider_id}</code>' in page
    assert "reading it back no longer finds it" in page
    assert "A dry run: nothing was sent" not in page  # only the outcomes present
    data = json.loads(owner_client.get(reverse("job_receipt_json", args=[job.pk])).content)
    assert {item["outcome"] for item in data["items"]} == {"verified"}
    assert data["status"] == "done" and data["counts"] == {"verified": 2}
    # Beside the values, their labels for whoever opens the file.
    assert data["status_label"] == "Finished" and data["outcome"] == "2 verified"
    assert {item["outcome_label"] for item in data["items"]} == {"Erased and verified"}
    assert data["times"]["created"] == MOMENT.isoformat()
    assert all(item["settled_at"].endswith("+00:00") for item in data["items"])


def test_a_policys_job_names_its_policy_and_the_list_filters_to_it(owner_client, synced):
    policy = RetentionPolicy.objects.create(name="Old support chats", owner=synced.owner,
                                            connection=synced)
    mine = erase(synced, 1, scope={"policy": policy.pk, "policy_name": policy.name,
                                   "older_than_days": 90})
    other = erase(synced, 2)
    page = owner_client.get(reverse("job", args=[mine.pk])).content.decode()
    assert f'Made by retention policy <a href="/policies/{policy.pk}/">“Old support chats”</a>' \
        in page and "picked by hand" not in page
    listing = owner_client.get(reverse("jobs"), {"policy": policy.pk}).content.decode()
    assert f"#{mine.pk}<" in listing and f"#{other.pk}<" not in listing
    assert "of policy “Old support chats”" in listing
    nonsense = owner_client.get(reverse("jobs"), {"policy": "x"}).content.decode()
    assert "data-outcome>" not in nonsense and "No jobs yet" in nonsense
    policy.delete()
    page = owner_client.get(reverse("job", args=[mine.pk])).content.decode()
    assert "“Old support chats” (removed since)" in page


def test_the_outcome_column_costs_one_query_however_many_jobs(owner_client, synced):
    def queries() -> int:
        with CaptureQueriesContext(connection) as seen:
            assert owner_client.get(reverse("jobs")).status_code == 200
        return len(seen)

    erase(synced, 1)
    one = queries()
    for _ in range(4):
        erase(synced, 1)
    assert queries() == one


def test_a_person_can_fix_a_zone_for_their_browser_and_go_back(owner_client, synced):
    job = erase(synced, 1)
    ErasureJob.objects.filter(pk=job.pk).update(created_at=MOMENT)
    receipt = reverse("job_receipt", args=[job.pk])
    page = owner_client.get(receipt).content.decode()
    assert f'href="/time-zone/?next={receipt}">change</a>' in page
    response = owner_client.post(reverse("time_zone"), {"zone": "Asia/Kolkata",
                                                        "next": receipt})
    assert response.status_code == 302 and response["Location"] == receipt
    assert owner_client.cookies[COOKIE].value == "Asia/Kolkata"
    assert owner_client.cookies[FIXED].value == "1"
    assert '2026-01-02 08:34 <span class="tz">IST</span>' in owner_client.get(
        receipt).content.decode()
    # Not a zone: said so, nothing changed.
    bad = owner_client.post(reverse("time_zone"), {"zone": "Mars/Olympus"}, follow=True)
    assert "is not a time zone; nothing changed" in bad.content.decode()
    assert owner_client.cookies[COOKIE].value == "Asia/Kolkata"
    # Somewhere else is not a place to be sent back to.
    away = owner_client.post(reverse("time_zone"), {"zone": "UTC",
                                                    "next": "https://evil.example/"})
    assert away["Location"] == reverse("time_zone")
    # Following the browser again: the fixed mark goes, so the script rewrites the zone.
    owner_client.post(reverse("time_zone"), {"zone": ""})
    assert owner_client.cookies[FIXED].value == ""
    assert "the time zone your browser reports" in owner_client.get(
        reverse("time_zone")).content.decode()


def test_a_job_of_a_request_over_several_connections_does_not_claim_the_whole_selection(
    owner_client, synced, convai_fake, convai_server
):
    """Three conversations picked over two connections: each job says they were picked over
    several connections, and none claims to hold all three."""
    from dashboard.mirror import sync
    from tests.helpers import connect

    other = connect(synced.owner, convai_fake, convai_server.url, "Second Convai")
    assert sync.perform_sync(sync.start(other).pk).status == "ok"
    ids = [*synced.conversations.values_list("pk", flat=True)[:2],
           other.conversations.values_list("pk", flat=True).first()]
    request_id = freeze.conversations(synced.owner, Conversation.objects.filter(pk__in=ids),
                                      {"select_all": False, "selected": 3})
    jobs = lifecycle.confirm(ErasureJob.objects.filter(request=request_id), dry_run=True,
                             enqueue=False)
    assert len(jobs) == 2
    for job in jobs:
        page = owner_client.get(f"/jobs/{job.pk}/").content.decode()
        assert "3 conversations over several connections" in page
        assert "3 conversations picked by hand" not in page
