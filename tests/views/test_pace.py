"""The connection page says at what pace Lethe talks to the provider, and why."""

from __future__ import annotations

import re
import time

import pytest
from django.urls import reverse

from dashboard.lib import ratebudget
from dashboard.mirror import sync
from dashboard.models import Connection
from providers.pacing import Pace, refused, slowed


@pytest.fixture
def owner_client(client, owner):  # type: ignore[no-untyped-def]
    client.force_login(owner)
    return client


def _pace_line(client, connection: Connection) -> str:  # type: ignore[no-untyped-def]
    page = client.get(reverse("connection", args=[connection.pk])).content.decode()
    found = re.search(r'<dd id="pace">(.*?)</dd>', page, re.S)
    assert found, "no pace on the connection page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", found.group(1))).strip()


# Transactional: a paced sync lasts long enough for its heartbeat thread to write the
# traffic counters on a connection of its own, which only a flush takes back.
@pytest.mark.django_db(transaction=True)
def test_the_connection_page_shows_the_learned_pace_and_the_last_429(
        settings, owner_client, connection, convai_fake):
    settings.LETHE_PROVIDER_RATE = 0
    ratebudget.reset()
    assert "not learned yet" in _pace_line(owner_client, connection)
    convai_fake.fail_next(1, 429)
    assert sync.perform_sync(sync.start(connection).pk).status == "ok"
    line = _pace_line(owner_client, connection)
    rate = Connection.objects.get(pk=connection.pk).pace_rate
    assert rate and re.match(r"[\d.]+ requests/s, learned just now; last 429 just now$",
                             line), line
    ratebudget.reset()


@pytest.mark.django_db
def test_a_pinned_rate_is_shown_as_fixed(settings, owner_client, connection):
    settings.LETHE_PROVIDER_RATE = 4
    assert _pace_line(owner_client, connection) == (
        "fixed at 4 requests/s (LETHE_PROVIDER_RATE), sent at 3.9 to stay under it")


@pytest.mark.django_db
def test_a_pace_eased_off_for_slowness_is_shown_as_a_rate(settings, owner_client, connection):
    """Slowed without a 429 the pace stops doubling: requests go at that rate, not "as fast
    as Lethe's concurrency allows"."""
    settings.LETHE_PROVIDER_RATE = 0
    now = time.time()
    pace = slowed(Pace(rate=8.0), now=now, granted=now, ceiling=None)
    Connection.objects.filter(pk=connection.pk).update(pace=pace.as_dict())
    line = _pace_line(owner_client, connection)
    assert line == "7.2 requests/s, learned just now; eased off because the provider's " \
                   "answers slowed", line
    # An hour on, it says so.
    Connection.objects.filter(pk=connection.pk).update(
        pace={**pace.as_dict(), "changed_at": now - 3600})
    assert "learned 1 hour ago;" in _pace_line(owner_client, connection)


@pytest.mark.django_db
def test_a_cut_asked_by_rate_limit_headers_is_not_called_a_429(settings, owner_client,
                                                                connection):
    settings.LETHE_PROVIDER_RATE = 0
    now = time.time()
    pace = refused(Pace(rate=8.0), now=now, granted=now, seen=0, ceiling=None, by="headers")
    Connection.objects.filter(pk=connection.pk).update(pace=pace.as_dict())
    assert _pace_line(owner_client, connection) == (
        "4 requests/s, learned just now; last told nothing was left (rate-limit headers) "
        "just now")


@pytest.mark.django_db(transaction=True)
def test_a_pace_that_never_met_a_429_does_not_claim_a_rate(settings, owner_client, connection):
    """Without push-back the pace doubles up to its top within a few answers: a figure
    like "1000 requests/s" was never sent, so the page says no limit was met yet."""
    settings.LETHE_PROVIDER_RATE = 0
    ratebudget.reset()
    assert sync.perform_sync(sync.start(connection).pk).status == "ok"
    assert Connection.objects.get(pk=connection.pk).pace_rate
    line = _pace_line(owner_client, connection)
    assert line.startswith("no limit met yet: the provider has not answered 429"), line
    assert "requests/s" not in line
    ratebudget.reset()
