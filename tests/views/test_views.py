"""The pages: sign-in required everywhere, outsiders get 404, and each screen does its job."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from dashboard.erasure import freeze, lifecycle, worker
from dashboard.models import Connection, Conversation, ErasureJob, Message, SyncRun
from providers.fakes.convai import DEMO_KEY
from tests.helpers import shown

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def outsider_client(client, outsider):
    client.force_login(outsider)
    return client


@pytest.fixture
def draft(synced):
    ids = synced.conversations.order_by("id")[:2]
    return freeze.conversations(synced.owner, synced.conversations.filter(pk__in=ids), {})


def every_url(synced, draft) -> list[tuple[str, str]]:
    conv = synced.conversations.first()
    job = ErasureJob.objects.filter(request=draft).first()
    return [
        ("get", reverse("home")),
        ("get", reverse("connections")),
        ("get", reverse("connection_add")),
        ("get", reverse("connection", args=[synced.pk])),
        ("get", reverse("connection_edit", args=[synced.pk])),
        ("post", reverse("connection_test", args=[synced.pk])),
        ("post", reverse("connection_sync", args=[synced.pk])),
        ("get", reverse("conversations")),
        ("get", reverse("transcript", args=[conv.pk])),
        ("post", reverse("erase_selected")),
        ("get", reverse("erase_preview", args=[draft])),
        ("get", reverse("jobs")),
        ("get", reverse("job", args=[job.pk])),
    ]


def test_every_view_refuses_an_anonymous_request(client, synced, draft):
    for method, url in every_url(synced, draft):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url
        htmx = getattr(client, method)(url, HTTP_HX_REQUEST="true")
        assert htmx.status_code == 401 and htmx["HX-Redirect"] == "/accounts/login/", url
    assert SyncRun.objects.filter(connection=synced).count() == 1


def test_an_outsider_gets_404_for_every_object_and_changes_nothing(outsider_client, synced, draft):
    runs_before = SyncRun.objects.count()
    object_urls = [(m, u) for m, u in every_url(synced, draft) if any(c.isdigit() for c in u)]
    for method, url in object_urls:
        assert getattr(outsider_client, method)(url).status_code == 404, url
    assert SyncRun.objects.count() == runs_before
    # Lists show nothing of the owner's.
    page = outsider_client.get(reverse("conversations")).content.decode()
    assert synced.conversations.first().title not in page
    assert "Team Convai" not in outsider_client.get(reverse("connections")).content.decode()
    # Selecting the owner's ids by hand yields nothing to erase.
    ids = list(synced.conversations.values_list("pk", flat=True))
    outsider_client.post(reverse("erase_selected"), {"conversation": ids})
    assert not ErasureJob.objects.filter(requested_by__username="outsider").exists()


def test_adding_a_connection_stores_the_key_encrypted_and_never_shows_it(owner_client,
                                                                         convai_server):
    response = owner_client.post(reverse("connection_add"), {
        "provider": "convai", "label": "Mine", "secret_api_key": DEMO_KEY,
        "option_base_url": convai_server.url,
    })
    connection = Connection.objects.get(label="Mine")
    assert response.status_code == 302
    assert DEMO_KEY not in connection.secrets_encrypted
    assert connection.get_secrets() == {"api_key": DEMO_KEY}
    for url in (reverse("connection", args=[connection.pk]),
                reverse("connection_edit", args=[connection.pk]), reverse("connections")):
        assert DEMO_KEY not in owner_client.get(url).content.decode()


def test_the_connection_form_rejects_a_missing_key_and_a_bad_address(owner_client):
    response = owner_client.post(reverse("connection_add"), {
        "provider": "convai", "label": "Mine", "secret_api_key": "",
        "option_base_url": "ftp://nowhere",
    })
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not Connection.objects.exists()


def test_test_button_reports_the_account_or_the_refusal(owner_client, connection):
    ok = owner_client.post(reverse("connection_test", args=[connection.pk]), HTTP_HX_REQUEST="true")
    assert "Reached" in ok.content.decode()
    connection.set_secrets({"api_key": "wrong-key-0000000000000000"})
    connection.save()
    bad = owner_client.post(reverse("connection_test", args=[connection.pk]),
                            HTTP_HX_REQUEST="true").content.decode()
    assert "refused the key ending" in bad and "wrong-key" not in bad
    connection.refresh_from_db()
    assert connection.status == Connection.Status.INVALID


def test_sync_now_queues_one_run_and_shows_it(owner_client, connection):
    response = owner_client.post(reverse("connection_sync", args=[connection.pk]),
                                 HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'hx-trigger="every 1s"' in response.content.decode()
    owner_client.post(reverse("connection_sync", args=[connection.pk]))
    assert SyncRun.objects.filter(connection=connection).count() == 1


def test_conversation_list_filters_by_text_date_and_state(owner_client, synced):
    conv = synced.conversations.order_by("id").first()
    word = conv.messages.filter(is_human=True).first().text.split()[-1].strip("?.!,")
    page = owner_client.get(reverse("conversations"), {"q": word}).content.decode()
    assert f'value="{conv.pk}"' in page
    empty = owner_client.get(reverse("conversations"), {"q": "zzz-no-such-text"}).content.decode()
    assert "No conversations match" in empty
    bad = owner_client.get(reverse("conversations"), {"start": "2025-02-01", "end": "2025-01-01"})
    assert "The From date is after the To date" in bad.content.decode()
    Conversation.objects.filter(pk=conv.pk).update(mirror_state="erased")
    erased = owner_client.get(reverse("conversations"), {"state": "erased"}).content.decode()
    # Listed by id: an erased conversation's title is not Lethe's to show any more.
    assert "Erased conversation" in erased and conv.title[:20] not in erased


def test_pagination_walks_every_row_once_with_real_links(owner_client, synced, settings):
    settings.LETHE_PAGE_SIZE = 5
    seen, url = [], reverse("conversations")
    for _ in range(10):
        response = owner_client.get(url)
        page = response.context["page"]
        seen += [c.pk for c in page.rows]
        if not page.next_cursor:
            break
        assert f"after={page.next_cursor}" in response.content.decode()
        url = reverse("conversations") + f"?after={page.next_cursor}"
    assert sorted(seen) == sorted(synced.conversations.values_list("pk", flat=True))
    assert len(seen) == len(set(seen))
    back = owner_client.get(reverse("conversations") + f"?before={page.prev_cursor}")
    rows = back.context["page"].rows
    assert rows and rows[-1].pk == seen[-len(page.rows) - 1]


def test_select_all_matching_counts_and_freezes_the_filter_without_ids(owner_client, synced):
    char = synced.characters.first()
    count = owner_client.get(reverse("conversations"),
                             {"character": char.pk, "part": "count"}, HTTP_HX_REQUEST="true")
    expected = synced.conversations.filter(character=char).count()
    assert f"Select all {expected} matching" in count.content.decode()
    response = owner_client.post(reverse("erase_selected"),
                                 {"select_all": "1", "character": char.pk})
    job = ErasureJob.objects.get()
    assert response["Location"] == reverse("erase_preview", args=[job.request])
    assert job.status == ErasureJob.Status.DRAFT and job.items.count() == expected
    assert job.scope["select_all"] is True


def test_bad_selection_input_is_refused_clearly(owner_client, synced):
    response = owner_client.post(reverse("erase_selected"), {"conversation": ["1", "x"]},
                                 follow=True)
    assert "not a number" in response.content.decode()
    response = owner_client.post(reverse("erase_selected"), {}, follow=True)
    assert "Nothing to erase" in response.content.decode()
    assert not ErasureJob.objects.exists()
    assert owner_client.get(reverse("erase_preview", args=[uuid.uuid4()])).status_code == 404


def test_preview_shows_counts_characters_sample_and_the_provider_limits(owner_client, synced,
                                                                        draft):
    Conversation.objects.filter(pk=synced.conversations.order_by("id").first().pk).update(
        flags={"in_memory": True})
    page = owner_client.get(reverse("erase_preview", args=[draft])).content.decode()
    assert "<strong>2</strong> whole conversations" in page
    assert "Lethe cannot delete single messages" in page or "single messages" in page
    assert "memory" in page
    assert "Dry run" in page and "Nothing was exported" in page
    assert "type 2" not in page  # two items are under the typing threshold


def test_confirm_requires_typing_the_count_then_queues_the_job(owner_client, synced, draft,
                                                               settings):
    settings.LETHE_TYPED_CONFIRM_THRESHOLD = 1
    url = reverse("erase_preview", args=[draft])
    assert "type 2" in owner_client.get(url).content.decode()
    owner_client.post(url, {"mode": "erase", "typed_count": "3", **shown(2)})
    assert ErasureJob.objects.get(request=draft).status == ErasureJob.Status.DRAFT
    response = owner_client.post(url, {"mode": "erase", "typed_count": "2",
                                       **shown(2)})
    job = ErasureJob.objects.get(request=draft)
    assert job.status == ErasureJob.Status.QUEUED and not job.dry_run
    assert response["Location"] == reverse("job", args=[job.pk])
    # Confirming twice does not queue twice.
    owner_client.post(url, {"mode": "erase", "typed_count": "2", **shown(2)})
    assert ErasureJob.objects.get(request=draft).confirmed_at == job.confirmed_at


def test_job_page_polls_until_done_then_shows_outcomes(owner_client, synced, draft):
    job = lifecycle.confirm(ErasureJob.objects.filter(request=draft), dry_run=False,
                          enqueue=False)[0]
    url = reverse("job", args=[job.pk])
    assert 'hx-trigger="every 1s"' in owner_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    worker.work_job(job.pk)
    done = owner_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "every 1s" not in done and "Erased and verified" in done and "2 of 2" in done


def test_transcript_escapes_chat_text_and_highlights_hits(owner_client, synced):
    conv = synced.conversations.first()
    Message.objects.create(conversation=conv, provider_id="evil", position=999, author="User",
                           is_human=True, text='<script>alert(1)</script><b hx-get="/x">hi</b>')
    page = owner_client.get(reverse("transcript", args=[conv.pk]), {"q": "alert"}).content.decode()
    assert "<script>alert" not in page and '<b hx-get="/x">' not in page
    assert "&lt;script&gt;<mark>alert</mark>(1)" in page


def test_security_headers_are_strict(owner_client):
    response = owner_client.get(reverse("connections"))
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Content-Type-Options"] == "nosniff"


def test_single_messages_cannot_be_selected_where_the_provider_erases_sessions_only(
        owner_client, synced):
    conv = synced.conversations.first()
    page = owner_client.get(reverse("transcript", args=[conv.pk])).content.decode()
    assert 'name="message"' not in page and "Lethe cannot delete single messages" in page
    response = owner_client.post(reverse("erase_selected"),
                                 {"message": [conv.messages.first().pk], "back": conv.pk},
                                 follow=True)
    assert "provider can erase" in response.content.decode()
    assert not ErasureJob.objects.exists()


@pytest.mark.parametrize("name", sorted(__import__("providers").REGISTRY))
def test_each_provider_has_its_own_connection_form_with_write_only_secrets(owner_client, name):
    import providers

    cls = providers.get(name)
    page = owner_client.get(reverse("connection_add"), {"provider": name}).content.decode()
    assert cls.label in page
    for spec in cls.fields:
        prefix = "secret" if spec.secret else "option"
        assert f'name="{prefix}_{spec.name}"' in page
        if spec.secret:
            assert f'type="password" name="secret_{spec.name}"' in page
