"""Subject search: one box across every connection a person can see, by name, e-mail, phone
number or phrase; escaped, highlighted lines grouped by provider and conversation; the
results erased as one request with one combined receipt."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from dashboard.erasure import freeze, lifecycle, worker
from dashboard.mirror import sync
from dashboard.models import Conversation, ErasureJob, Message
from dashboard.views.search import marked, phone_pattern
from tests.helpers import make_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def two(synced, convai_server):  # type: ignore[no-untyped-def]
    """Two connections of the same person, each with one conversation about Jane."""
    second = make_connection(synced.owner, convai_server.url)
    second.label = "Sales Convai"
    second.save()
    assert sync.perform_sync(sync.start(second).pk).status == "ok"
    a = synced.conversations.order_by("id").first()
    b = second.conversations.order_by("-id").first()
    Message.objects.filter(conversation=a, position=0).update(
        text="Hi, I am Jane Doe, write to jane.doe@example.com <script>alert(1)</script>")
    Message.objects.filter(conversation=b, position=0).update(
        text="Call Jane on +44 20 7946 0018 tomorrow")
    return synced, second, a, b


def search(client, q: str) -> str:  # type: ignore[no-untyped-def]
    response = client.get(reverse("search"), {"q": q})
    assert response.status_code == 200
    return response.content.decode()


def test_a_name_finds_conversations_in_every_connection_grouped_with_the_lines(client, two):
    synced, second, a, b = two
    client.force_login(synced.owner)
    page = search(client, "Jane")
    assert f'value="{a.pk}"' in page and f'value="{b.pk}"' in page
    assert "2 conversations match" in page
    assert "<mark>Jane</mark> Doe" in page and "Call <mark>Jane</mark>" in page


def test_an_email_address_is_found_and_the_chat_text_stays_escaped(client, two):
    synced, _, a, b = two
    client.force_login(synced.owner)
    page = search(client, "jane.doe@example.com")
    assert f'value="{a.pk}"' in page and f'value="{b.pk}"' not in page
    assert "<mark>jane.doe@example.com</mark>" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page


def test_a_phone_number_is_found_however_it_is_spaced(client, two):
    synced, _, a, b = two
    client.force_login(synced.owner)
    page = search(client, "+44 (20) 7946-0018")
    assert f'value="{b.pk}"' in page and f'value="{a.pk}"' not in page
    assert "<mark>+44 20 7946 0018</mark>" in page


def test_marking_escapes_every_piece_and_adds_only_mark():
    html = marked('<b onclick="x">Jane</b> & jane', "jane")
    assert html == ("&lt;b onclick=&quot;x&quot;&gt;<mark>Jane</mark>&lt;/b&gt; &amp; "
                    "<mark>jane</mark>")
    assert phone_pattern("hello") == "" and phone_pattern("12") == ""


def test_nobody_finds_conversations_of_connections_they_cannot_see(client, two, outsider):
    client.force_login(outsider)
    page = search(client, "Jane")
    assert "Nothing mirrored matches" in page


def test_selected_results_become_one_request_with_a_job_per_connection(client, two,
                                                                       convai_fake):
    synced, second, a, b = two
    client.force_login(synced.owner)
    response = client.post(reverse("search_erase"), {"q": "Jane",
                                                     "conversation": [a.pk, b.pk]})
    assert response.status_code == 302
    jobs = list(ErasureJob.objects.order_by("connection_id"))
    assert len(jobs) == 2 and len({job.request for job in jobs}) == 1
    assert {job.connection_id for job in jobs} == {synced.pk, second.pk}
    assert "Jane" not in json.dumps(jobs[0].scope)  # the subject is not kept in the job
    for job in lifecycle.confirm(jobs, dry_run=False, enqueue=False):
        worker.work_job(job.pk)
    assert set(convai_fake.deletes) == {a.provider_id, b.provider_id}
    data = json.loads(client.get(reverse("request_receipt_json", args=[jobs[0].request])
                                 ).content)
    assert data["connections"] == 2 and data["counts"] == {"verified": 2}
    assert sorted(part["job"] for part in data["jobs"]) == [job.pk for job in jobs]
    page = client.get(reverse("request_receipt", args=[jobs[0].request])).content.decode()
    assert "Sales Convai" in page and "Team Convai" in page
    # In words, with whole ids, for whoever the receipt is handed to.
    assert "Outcome</dt><dd>2 verified" in page and ">verified<" not in page
    assert f'<code class="id full">{a.provider_id}</code>' in page
    assert "reading it back no longer finds it" in page


def test_select_all_takes_every_match_not_just_those_shown(client, two):
    synced, second, a, b = two
    client.force_login(synced.owner)
    client.post(reverse("search_erase"), {"q": "Jane", "select_all": "1"})
    items = set(ErasureJob.objects.values_list("items__conversation_id", flat=True))
    assert items == {a.pk, b.pk}


def test_ids_of_other_peoples_conversations_are_ignored(client, two, outsider):
    synced, _, a, _ = two
    outsider_role = type(outsider).objects.get(pk=outsider.pk)
    from tests.helpers import with_role

    client.force_login(with_role(outsider_role, "operator"))
    response = client.post(reverse("search_erase"), {"q": "Jane", "conversation": [a.pk]})
    assert response.status_code == 302 and not ErasureJob.objects.exists()


def test_the_combined_receipt_is_a_404_for_someone_who_cannot_see_its_jobs(client, two,
                                                                            outsider):
    synced, _, a, _ = two
    request = freeze.conversations(synced.owner, Conversation.objects.filter(pk=a.pk), {})
    lifecycle.confirm(ErasureJob.objects.filter(request=request), dry_run=True, enqueue=False)
    client.force_login(outsider)
    assert client.get(reverse("request_receipt", args=[request])).status_code == 404
    assert client.get(reverse("request_receipt_json", args=[request])).status_code == 404
