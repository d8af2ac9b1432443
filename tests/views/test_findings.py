"""The Findings screen: counts and a list of what was planted at the provider, masked
everywhere until someone reveals a value (audited), and "Erase these messages" through the
ordinary preview, after which the findings are gone with the messages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dashboard.erasure import worker
from dashboard.mirror.findings import rescan
from dashboard.models import AuditEvent, ErasureJob, Finding, Message, MirrorState
from providers.fakes.planted import PLANTED
from tests.helpers import make_connection, shown, sync_now

pytestmark = pytest.mark.django_db
VALUES = [value for value, _ in PLANTED.values()]


def test_the_list_counts_and_lists_every_planted_kind_without_a_value(client, planted_cai):
    client.force_login(planted_cai.owner)
    page = client.get(reverse("findings")).content.decode()
    for finding in Finding.objects.all():
        assert finding.preview in page
        assert f"?finding={finding.pk}#finding-{finding.pk}" in page
    assert f"{planted_cai.label}</a> <span class=\"badge\">{len(PLANTED)}</span>" in page
    assert not [value for value in VALUES if value in page]
    only_cards = client.get(reverse("findings") + "?kind=card").content.decode()
    assert "1 finding in messages" in only_cards
    assert Finding.objects.get(kind="card").preview in only_cards
    assert Finding.objects.get(kind="email").preview not in only_cards


def test_a_bad_filter_is_a_clear_error_and_the_page_still_answers(client, planted_cai):
    client.force_login(planted_cai.owner)
    page = client.get(reverse("findings") + "?kind=nonsense&start=2025-02-01&end=2025-01-01")
    assert page.status_code == 200
    assert "Select a valid choice" in page.content.decode()


def test_the_transcript_masks_findings_until_one_is_revealed_which_is_audited(
        client, planted_cai):
    client.force_login(planted_cai.owner)
    card = Finding.objects.get(kind="card")
    value = PLANTED["card"][0]
    url = reverse("transcript", args=[card.conversation_id]) + f"?finding={card.pk}"
    page = client.get(url).content.decode()
    assert f'<mark class="finding current" id="finding-{card.pk}"' in page
    assert not [v for v in VALUES if v in page]
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.FINDING_REVEALED).exists()
    revealed = client.post(reverse("finding_reveal", args=[card.pk]), HTTP_HX_REQUEST="true")
    assert value in revealed.content.decode()
    assert PLANTED["email"][0] not in revealed.content.decode()  # only the one asked for
    event = AuditEvent.objects.get(action=AuditEvent.Action.FINDING_REVEALED)
    assert event.actor == planted_cai.owner and event.object_id == str(card.pk)
    assert value not in str(event.details) and value not in event.object_label


def test_an_outsider_cannot_see_or_reveal_a_finding(client, planted_cai, outsider):
    client.force_login(outsider)
    card = Finding.objects.get(kind="card")
    assert client.post(reverse("finding_reveal", args=[card.pk])).status_code == 404
    assert card.preview not in client.get(reverse("findings")).content.decode()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.FINDING_REVEALED).exists()


def test_the_overview_says_how_many_findings_are_open(client, planted_cai):
    client.force_login(planted_cai.owner)
    page = client.get(reverse("home")).content.decode()
    assert f"{len(PLANTED)} findings</a>" in page


def test_erasing_these_messages_goes_through_the_preview_and_the_findings_go_with_them(
        client, planted_cai, planted):
    client.force_login(planted_cai.owner)
    preview = client.post(reverse("findings_erase"), {"kind": "secret"})
    assert preview.status_code == 302 and "/erase/" in preview["Location"]
    [job] = ErasureJob.objects.all()
    assert job.status == ErasureJob.Status.DRAFT and job.scope["kind"] == "secret"
    [item] = job.items.all()
    target = Message.objects.get(provider_id=planted["secret"])
    assert (item.kind, item.message_id) == ("message", target.pk)
    client.post(preview["Location"], {"mode": "erase", **shown(1)})
    assert worker.work_job(job.pk).items.get().state == "verified"
    target.refresh_from_db()
    assert target.mirror_state == MirrorState.ERASED
    assert not Finding.objects.filter(kind="secret").exists()
    assert Finding.objects.count() == len(PLANTED) - 1
    page = client.get(reverse("findings")).content.decode()
    assert Finding.objects.get(kind="card").preview in page
    assert "?kind=secret" not in page  # no count of secrets left


def test_where_only_whole_conversations_can_go_the_conversation_is_frozen(
        client, owner, convai_fake, convai_server):
    with convai_fake.lock:
        session = next(iter(convai_fake.characters.values())).newest_first()[0]
        speaker = session.interactions[0].lines[0][0]
        session.interactions[0].lines.insert(0, (speaker, "mail me: a.b@example.org"))
    connection = make_connection(owner, convai_server.url)
    sync_now(connection)
    client.force_login(owner)
    preview = client.post(reverse("findings_erase"), {"kind": "email"})
    assert preview.status_code == 302
    [item] = ErasureJob.objects.get().items.all()
    assert (item.kind, item.provider_id) == ("conversation", session.id)


def test_a_viewer_may_look_but_not_erase(client, planted_cai, django_user_model):
    planted_cai.owner.groups.clear()  # the default role: viewer
    client.force_login(planted_cai.owner)
    page = client.get(reverse("findings")).content.decode()
    assert "Erase these messages" not in page
    assert client.post(reverse("findings_erase"), {"kind": "card"}).status_code == 403
    assert not ErasureJob.objects.exists()


def test_nothing_left_to_erase_says_so(client, planted_cai):
    client.force_login(planted_cai.owner)
    answer = client.post(reverse("findings_erase"), {"kind": "card",
                                                     "connection": planted_cai.pk + 99})
    assert answer.status_code == 302 and answer["Location"].startswith(reverse("findings"))
    assert not ErasureJob.objects.exists()


def test_a_snippet_never_cuts_a_neighbouring_finding_in_half(client, planted_cai, planted):
    card, iban = PLANTED["card"][0], PLANTED["iban"][0]
    message = Message.objects.get(provider_id=planted["card"])
    # The IBAN starts just inside the card's window of context and runs past it.
    message.text = f"{'x' * 70} {iban} {'y' * 52}{card} end"
    message.save()
    Finding.objects.filter(message=message).delete()
    rescan()
    client.force_login(planted_cai.owner)
    page = client.get(reverse("findings") + "?kind=card").content.decode()
    assert Finding.objects.get(message=message, kind="card").preview in page
    assert iban.split()[1:-1] == ["WEST", "1234", "5698", "7654"]
    assert not [piece for piece in iban.split()[1:-1] if piece in page]  # only its preview


def test_a_dismissed_finding_leaves_the_open_ones_and_stays_dismissed_on_a_rescan(
        client, planted_cai):
    client.force_login(planted_cai.owner)
    card = Finding.objects.get(kind="card")
    back = reverse("findings") + "?kind=card"
    answer = client.post(reverse("finding_dismiss", args=[card.pk]), {"back": back})
    assert answer.status_code == 302 and answer["Location"] == back
    card.refresh_from_db()
    assert card.dismissed_at and card.dismissed_by == planted_cai.owner
    event = AuditEvent.objects.get(action=AuditEvent.Action.FINDING_DISMISSED)
    assert event.details["dismissed"] is True and PLANTED["card"][0] not in str(event.details)
    assert card.preview not in client.get(reverse("findings")).content.decode()
    assert f"{len(PLANTED) - 1} findings</a>" in client.get(reverse("home")).content.decode()
    assert card.preview in client.get(reverse("findings") + "?dismissed=on").content.decode()
    rescan()
    assert Finding.objects.get(kind="card").dismissed_at == card.dismissed_at
    # Erasing what the page shows leaves the dismissed one alone.
    client.post(reverse("findings_erase"), {})
    items = ErasureJob.objects.get().items.values_list("message_id", flat=True)
    assert card.message_id not in set(items) and len(items) == len(PLANTED) - 1
    client.post(reverse("finding_dismiss", args=[Finding.objects.get(kind="card").pk]),
                {"reopen": "1", "back": "https://elsewhere.example/"})
    assert Finding.objects.get(kind="card").dismissed_at is None


def test_a_viewer_cannot_dismiss(client, planted_cai):
    planted_cai.owner.groups.clear()
    client.force_login(planted_cai.owner)
    card = Finding.objects.get(kind="card")
    assert client.post(reverse("finding_dismiss", args=[card.pk])).status_code == 403
    card.refresh_from_db()
    assert card.dismissed_at is None


def test_search_shows_what_it_finds_masked_like_every_other_page(client, planted_cai):
    """Searching for the words around a planted value lists the line with the value masked;
    only the transcript's audited reveal shows it in clear."""
    client.force_login(planted_cai.owner)
    for kind in ("email", "card", "secret"):
        words = PLANTED[kind][1].split("{value}")[0].split()[:3]
        page = client.get(reverse("search"), {"q": " ".join(words)}).content.decode()
        assert Finding.objects.get(kind=kind).preview in page, kind
        assert PLANTED[kind][0] not in page, kind


def test_a_job_made_from_the_findings_page_says_so(client, planted_cai):
    client.force_login(planted_cai.owner)
    preview = client.post(reverse("findings_erase"), {"kind": "secret"})
    page = client.get(preview["Location"]).content.decode()
    assert "will be sent, in 1 connection." in page
    client.post(preview["Location"], {"mode": "dry_run", **shown(1)})
    [job] = ErasureJob.objects.all()
    detail = client.get(reverse("job", args=[job.pk])).content.decode()
    assert "Messages holding findings of kind “Secret or credential”" in detail
    assert "picked by hand" not in detail
    requested = AuditEvent.objects.get(action="erasure_requested")
    assert requested.details["items"] == 1
