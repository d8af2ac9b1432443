"""The connection page says what the last check or sync found: a key is checked before it is
saved, a refused key never reads "OK", and the parts a sync or a Test changes are redrawn
by the answer that ends them."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from dashboard.mirror import sync
from dashboard.models import Connection, SyncRun
from providers.fakes.convai import DEMO_KEY

pytestmark = pytest.mark.django_db

WRONG = "wrong-key-0000000000000000"


@pytest.fixture
def owner_client(client, owner):  # type: ignore[no-untyped-def]
    client.force_login(owner)
    return client


def add(owner_client, url: str, key: str, **extra: str):  # type: ignore[no-untyped-def]
    return owner_client.post(reverse("connection_add"), {
        "provider": "convai", "label": "Mine", "secret_api_key": key, "option_base_url": url,
        **extra})


def status_of(page: str) -> str:
    return page.split('data-connection-status="', 1)[1].split('"', 1)[0]


def test_a_refused_key_is_not_saved_and_the_form_says_why(owner_client, convai_server):
    response = add(owner_client, convai_server.url, WRONG)
    page = response.content.decode()
    assert response.status_code == 200 and not Connection.objects.exists()
    assert "Convai refused the key ending …0000: Convai answered 401: Invalid API key " \
           "provided. Replace the key" in page
    assert ".." not in page.split("refused the key", 1)[1].split("</", 1)[0]
    assert "Nothing was saved" in page and WRONG not in page


def test_a_working_key_is_saved_as_checked(owner_client, convai_server):
    add(owner_client, convai_server.url, DEMO_KEY)
    connection = Connection.objects.get()
    assert connection.status == Connection.Status.OK and connection.account_name
    page = owner_client.get(reverse("connection", args=[connection.pk])).content.decode()
    assert status_of(page) == "ok" and "The key works" in page


def test_a_wrong_key_saved_unchecked_never_reads_ok_after_test_or_sync(owner_client,
                                                                       convai_server):
    add(owner_client, convai_server.url, WRONG, skip_check="on")
    connection = Connection.objects.get()
    detail = reverse("connection", args=[connection.pk])
    assert connection.status == Connection.Status.UNCHECKED
    assert status_of(owner_client.get(detail).content.decode()) == "unchecked"

    # Test, as the page's button sends it: the status is redrawn in the same answer.
    answer = owner_client.post(reverse("connection_test", args=[connection.pk]),
                               HTTP_HX_REQUEST="true").content.decode()
    assert 'id="connection-status" hx-swap-oob="true"' in answer
    assert status_of(answer) == "invalid" and "refused the key" in answer

    # Someone fixes the status by hand; the next sync finds the key refused again.
    Connection.objects.filter(pk=connection.pk).update(status=Connection.Status.OK,
                                                       last_error="")
    run = sync.perform_sync(sync.start(connection).pk)
    assert run.status == SyncRun.Status.FAILED
    page = owner_client.get(detail).content.decode()
    assert status_of(page) == "invalid" and "Invalid key" in page


def test_an_unreachable_provider_does_not_read_ok(owner_client, connection, convai_fake):
    convai_fake.unavailable_for(30)
    answer = owner_client.post(reverse("connection_test", args=[connection.pk]),
                               HTTP_HX_REQUEST="true").content.decode()
    assert status_of(answer) == "failing" and "Could not check the key" in answer
    convai_fake.clear_faults()
    answer = owner_client.post(reverse("connection_test", args=[connection.pk]),
                               HTTP_HX_REQUEST="true").content.decode()
    assert status_of(answer) == "ok" and "the key works" in answer


def test_the_edit_form_names_its_fields_and_the_page_its_real_address(owner_client,
                                                                      connection):
    form = owner_client.get(reverse("connection_edit", args=[connection.pk])).content.decode()
    assert "New API key" in form and "Replace api key" not in form
    assert "Save without checking" in form
    page = owner_client.get(reverse("connection", args=[connection.pk])).content.decode()
    assert connection.options["base_url"] in page and ">default<" not in page


def test_the_poll_that_finds_a_sync_finished_redraws_every_part_it_changed(owner_client,
                                                                           connection):
    detail = reverse("connection", args=[connection.pk])
    page = owner_client.get(detail).content.decode()
    assert "No characters mirrored yet" in page and "No syncs yet" in page
    run = sync.start(connection)
    polling = owner_client.get(detail, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in polling and "hx-swap-oob" not in polling

    sync.perform_sync(run.pk)
    run.refresh_from_db()
    done = owner_client.get(detail, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' not in done
    for part in ("connection-status", "characters", "runs"):
        assert re.search(f'id="{part}"[^>]*hx-swap-oob="true"', done), part
    assert "No characters mirrored yet" not in done and "No syncs yet" not in done
    assert f"{run.conversations} conversations" in done
    assert f"{run.requests} requests sent" in done and run.requests > 0
    # Idle, the page asks now and then whether another run came, redrawn only then.
    asks = re.search(r'hx-get="([^"]+\?since=[^"]+)" hx-trigger="every 10s"', done)
    assert asks, done
    ask = asks.group(1).replace("&amp;", "&")
    assert owner_client.get(ask, HTTP_HX_REQUEST="true").status_code == 204
    sync.start(connection)  # from another tab, or a retention policy
    again = owner_client.get(ask, HTTP_HX_REQUEST="true")
    assert again.status_code == 200 and 'hx-trigger="every 1s"' in again.content.decode()


def running_sync_section(client, connection: Connection, read: int,  # type: ignore[no-untyped-def]
                         **counts: object) -> tuple[str, str]:
    """The polled sync section of a run 40 s in, ``read`` of 90 conversations read: (its
    HTML, its text)."""
    from datetime import timedelta

    from django.utils import timezone

    run = sync.start(connection)
    now = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(
        status=SyncRun.Status.RUNNING, started_at=now - timedelta(seconds=40),
        heartbeat_at=now, characters=3, conversations=90, to_read=90, read=read,
        messages=412, requests=151, **counts)
    page = client.get(reverse("connection", args=[connection.pk]),
                      HTTP_HX_REQUEST="true").content.decode()
    return page, " ".join(re.sub(r"<[^>]+>", "", page).split())


def test_a_running_sync_shows_its_counts_and_an_estimate(owner_client, connection):
    page, text = running_sync_section(owner_client, connection, read=30, rate_limited=2,
                                      rate=3.5)
    assert 'value="30" max="90"' in page
    assert "3 characters, 90 conversations listed, 30 of 90 read, 412 messages." in text
    assert "151 requests sent, 3.5/s now; throttled: 2 × 429." in text
    assert "About 1" in text and "minute" in text  # 30 read in 40 s: 60 more take 80 s


def test_a_job_paused_on_a_refused_key_resumes_once_test_finds_the_new_key_good(
        owner_client, synced):
    from dashboard.models import ErasureJob
    from tests.helpers import confirmed_job

    job = confirmed_job(synced, 2)
    ErasureJob.objects.filter(pk=job.pk).update(status=ErasureJob.Status.PAUSED,
                                                paused_for_auth=True)
    edit = reverse("connection_edit", args=[synced.pk])
    owner_client.post(edit, {"label": synced.label, "secret_api_key": DEMO_KEY,
                             "option_base_url": synced.options["base_url"],
                             "skip_check": "on"})
    assert ErasureJob.objects.get(pk=job.pk).status == ErasureJob.Status.PAUSED  # unchecked
    answer = owner_client.post(reverse("connection_test", args=[synced.pk]),
                               HTTP_HX_REQUEST="true").content.decode()
    assert "1 paused job resumed" in answer
    assert ErasureJob.objects.get(pk=job.pk).status != ErasureJob.Status.PAUSED


def test_a_sync_about_to_end_says_less_than_a_minute_is_left(owner_client, connection):
    _, text = running_sync_section(owner_client, connection, read=88)
    assert "Less than a minute left." in text and "0 minutes" not in text
