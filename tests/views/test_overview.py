"""The overview: what is held per provider and connection and how old it is (a server-drawn
SVG chart), failing connections, running and waiting jobs, and what policies remove next."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard.erasure import freeze, lifecycle
from dashboard.models import Connection, ErasureJob, RetentionPolicy
from dashboard.views.overview import age_stats, chart

pytestmark = pytest.mark.django_db


def test_conversations_fall_into_the_right_age_buckets(synced):
    now = timezone.now()
    ids = list(synced.conversations.order_by("id").values_list("pk", flat=True))
    ages = [1, 45, 200, 800]
    for pk, days in zip(ids, ages, strict=False):
        synced.conversations.filter(pk=pk).update(last_message_at=now - timedelta(days=days))
    synced.conversations.filter(pk__in=ids[4:]).update(last_message_at=now - timedelta(days=5))
    row = age_stats(Connection.objects.filter(pk=synced.pk))[synced.pk]
    assert [row["b0"], row["b1"], row["b2"], row["b3"]] == [1 + len(ids[4:]), 1, 1, 1]
    assert row["conversations"] == len(ids)


def test_the_chart_scales_bars_to_the_largest_bucket():
    bars = chart([10, 5, 0, 1])["bars"]
    assert [b["n"] for b in bars] == [10, 5, 0, 1]
    assert bars[0]["h"] == 2 * bars[1]["h"] and bars[2]["h"] == 0
    assert {b["y"] + b["h"] for b in bars} == {chart([0, 0, 0, 0])["base"]}  # all stand on the axis


def test_the_overview_is_the_landing_page_with_an_svg_chart_and_no_script_or_style(client,
                                                                                  synced):
    client.force_login(synced.owner)
    response = client.get("/")
    page = response.content.decode()
    assert response.status_code == 200 and "<svg" in page and "Team Convai" in page
    held = synced.conversations.count()
    assert f"{held} conversation" in page
    body = page.split("<main", 1)[1]
    assert "<script" not in body and "style=" not in body


def test_failing_connections_and_waiting_jobs_are_listed(client, synced, settings):
    settings.LETHE_APPROVAL_ALL = True
    Connection.objects.filter(pk=synced.pk).update(
        status=Connection.Status.INVALID, last_error="Convai refused the key ending …a1f9")
    first = synced.conversations.order_by("id").first()
    request = freeze.conversations(synced.owner, synced.conversations.filter(pk=first.pk), {})
    [job] = lifecycle.confirm(ErasureJob.objects.filter(request=request), dry_run=False,
                            enqueue=False)
    client.force_login(synced.owner)
    page = client.get(reverse("home")).content.decode()
    assert "Connections needing attention" in page and "refused the key" in page
    assert f"#{job.pk}" in page and "Awaiting approval" in page


def test_the_policies_next_removals_are_shown(client, synced):
    synced.conversations.update(last_message_at=timezone.now() - timedelta(days=400))
    RetentionPolicy.objects.create(name="Year", owner=synced.owner, connection=synced,
                                   older_than_days=365)
    client.force_login(synced.owner)
    page = client.get(reverse("home")).content.decode()
    assert "Year" in page and f'<td class="num">{synced.conversations.count()}</td>' in page


def test_an_outsider_sees_nothing_of_other_peoples_connections(client, synced, outsider):
    client.force_login(outsider)
    page = client.get(reverse("home")).content.decode()
    assert "Team Convai" not in page and "No connections yet" in page


def totals_of(page: str) -> dict[str, int]:
    import re

    return {name: int(n) for name, n in re.findall(
        r'data-total="([\w-]+)">(?:<a [^>]*>)?(\d+)', page)}


def test_a_connection_never_synced_gets_a_next_step_and_a_sync_button_not_empty_charts(
        client, connection):
    client.force_login(connection.owner)
    page = client.get(reverse("home")).content.decode()
    assert totals_of(page) == {"connections": 1, "characters": 0, "conversations": 0,
                               "messages": 0, "jobs-open": 0}
    assert "Next: sync Team Convai" in page and "<svg" not in page
    assert "last sync" not in page and "never synced" in page
    assert f'action="{reverse("connection_sync", args=[connection.pk])}"' in page
    assert "Convai Convai" not in " ".join(page.split())  # the provider is named once


def test_after_a_sync_the_totals_are_what_the_mirror_holds(client, synced):
    from dashboard.models import Character, Message

    client.force_login(synced.owner)
    page = client.get(reverse("home")).content.decode()
    assert totals_of(page) == {
        "connections": 1, "characters": Character.objects.count(),
        "conversations": synced.conversations.count(),
        "messages": Message.objects.filter(conversation__connection=synced).count(),
        "jobs-open": 0}
    assert "<svg" in page and "last synced" in page
    assert "pick conversations to erase" in page  # nothing erased yet: the next step


def test_the_overview_sync_button_comes_back_to_the_overview_which_follows_the_sync(
        client, connection, monkeypatch, django_capture_on_commit_callbacks):
    from dashboard.lib import queue
    from dashboard.mirror import sync

    sent: list[int] = []
    monkeypatch.setattr(queue, "dispatch", lambda task, pk, copies=1: sent.append(pk))
    client.force_login(connection.owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("connection_sync", args=[connection.pk]),
                               {"back": "overview"})
    assert response.status_code == 302 and response.url == reverse("home")
    page = client.get(reverse("home")).content.decode()
    assert 'hx-select="#overview-live"' in page and "Sync queued" in page
    assert "Syncing: the figures fill in" in page

    sync.perform_sync(sent[0])  # the worker's part
    page = client.get(reverse("home")).content.decode()
    assert "data-sync-running" not in page and "<svg" in page
    # Idle, it asks every 10 s whether anything moved, and is redrawn only then.
    asks = re.search(r'hx-get="([^"]+\?since=\w+)" hx-trigger="every 10s"', page)
    assert asks, page
    assert client.get(asks.group(1), HTTP_HX_REQUEST="true").status_code == 204
    sync.start(connection)  # from another tab
    moved = client.get(asks.group(1), HTTP_HX_REQUEST="true")
    assert moved.status_code == 200 and "data-sync-running" in moved.content.decode()


def test_an_idle_overview_is_redrawn_when_a_job_or_a_connection_changes(client, synced):
    from dashboard.views.overview import live_key

    client.force_login(synced.owner)
    first = synced.conversations.filter(pk=synced.conversations.order_by("id")[0].pk)
    [job] = lifecycle.confirm(
        ErasureJob.objects.filter(request=freeze.conversations(synced.owner, first, {})),
        dry_run=False, enqueue=False)
    key = live_key(synced.owner)
    assert client.get(reverse("home"), {"since": key}).status_code == 204
    ErasureJob.objects.filter(pk=job.pk).update(status=ErasureJob.Status.PAUSED)
    assert live_key(synced.owner) != key  # a running job paused: its line changes
    key = live_key(synced.owner)
    Connection.objects.filter(pk=synced.pk).update(last_error="The key was refused.")
    assert client.get(reverse("home"), {"since": key}).status_code == 200
