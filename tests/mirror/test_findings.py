"""Findings follow the mirror: a sync finds each kind of secret and personal data planted at
the provider, stores where it is with a masked preview and nowhere the value, makes them
anew when a message's text changes, and drops them when the message is erased."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.urls import reverse

from dashboard.erasure import freeze, lifecycle, worker
from dashboard.models import AuditEvent, ErasureJob, Finding, FindingPattern, Message
from dashboard.models.findings import check_pattern
from dashboard.settings import finding_patterns
from providers.fakes import FAKES
from providers.fakes.planted import CUSTOM_PATTERN, PLANTED
from tests.helpers import connect, pg_dump, sync_now

pytestmark = pytest.mark.django_db


def test_a_sync_finds_each_planted_kind_where_it_is_with_a_masked_preview(planted_cai, planted):
    found = {f.kind: f for f in Finding.objects.select_related("message")}
    assert set(found) == set(PLANTED)
    for kind, (value, _) in PLANTED.items():
        finding = found[kind]
        assert finding.message.provider_id == planted[kind]
        assert finding.connection_id == planted_cai.pk
        assert finding.conversation_id == finding.message.conversation_id
        assert finding.message.text[finding.start:finding.end] == value
        assert value not in finding.preview and len(finding.preview) < len(value)
    assert found["custom"].detector == CUSTOM_PATTERN[0]


@pytest.mark.parametrize("provider", sorted(FAKES))
def test_each_provider_s_planted_values_are_found_in_the_messages_planted(owner, provider):
    fake = FAKES[provider](seed=4)
    FindingPattern.objects.create(name=CUSTOM_PATTERN[0], pattern=CUSTOM_PATTERN[1])
    placed = fake.plant(list(PLANTED))
    with fake.serve() as server:
        sync_now(connect(owner, fake, server.url))
    found = dict(Finding.objects.values_list("kind", "message__provider_id"))
    assert found == placed


@pytest.mark.django_db(transaction=True)
def test_no_table_holds_a_planted_value_but_the_message_itself(owner, planted_fake, planted):
    with planted_fake.serve() as server:
        connection = connect(owner, planted_fake, server.url)
        sync_now(connection)
    assert Finding.objects.count() == len(PLANTED)
    dump = pg_dump()
    for value, _ in PLANTED.values():
        copies = dump.count(value)
        in_messages = Message.objects.filter(text__contains=value).count()
        assert in_messages == 1 and copies == in_messages, value


def test_a_resync_of_unchanged_text_keeps_the_findings_as_they_were(planted_cai):
    before = set(Finding.objects.values_list("pk", "kind", "start"))
    sync_now(planted_cai)
    assert set(Finding.objects.values_list("pk", "kind", "start")) == before


def test_findings_are_made_anew_when_a_message_text_changes(planted_cai, planted_fake, planted):
    with planted_fake.lock:
        for char in planted_fake.characters.values():
            for chat in char.chats.values():
                for turn in chat.turns:
                    shown = next(c for c in turn.candidates if c.id == turn.primary)
                    if turn.id == planted["card"]:
                        shown.text = "Never mind, I paid cash."
                    if turn.id == planted["email"]:
                        shown.text = (f"Sorry, wrong one. Write to {PLANTED['email'][0]}"
                                      " or to bob@example.org")
    sync_now(planted_cai)
    kinds = sorted(Finding.objects.values_list("kind", flat=True))
    assert "card" not in kinds and kinds.count("email") == 2
    message = Message.objects.get(provider_id=planted["email"])
    assert {message.text[f.start:f.end] for f in message.findings.all()} == {
        PLANTED["email"][0], "bob@example.org"}


def test_erasing_a_message_drops_its_findings_and_no_sync_brings_them_back(planted_cai, planted):
    target = Message.objects.get(provider_id=planted["secret"])
    request = freeze.messages(planted_cai.owner, Message.objects.filter(pk=target.pk), {})
    [job] = lifecycle.confirm(ErasureJob.objects.filter(request=request), dry_run=False,
                              enqueue=False)
    worker.work_job(job.pk)
    assert not Finding.objects.filter(kind="secret").exists()
    assert Finding.objects.count() == len(PLANTED) - 1
    sync_now(planted_cai)
    assert not Finding.objects.filter(kind="secret").exists()


def test_the_find_command_scans_the_existing_mirror_in_batches(planted_cai, settings):
    Finding.objects.all().delete()
    FindingPattern.objects.all().delete()
    settings.LETHE_FINDINGS_PATTERNS = {"Employee id (settings)": CUSTOM_PATTERN[1]}
    call_command("find", "--batch", "3")
    assert sorted(Finding.objects.values_list("kind", flat=True)) == sorted(PLANTED)
    assert Finding.objects.get(kind="custom").detector == "Employee id (settings)"
    call_command("find", "--batch", "3")  # again: the same, not twice as many
    assert Finding.objects.count() == len(PLANTED)


def test_with_findings_off_a_sync_finds_nothing(owner, planted_fake, planted, settings):
    settings.LETHE_FINDINGS = False
    with planted_fake.serve() as server:
        sync_now(connect(owner, planted_fake, server.url))
    assert not Finding.objects.exists()


@pytest.mark.parametrize(("pattern", "problem"), [
    ("EMP-(", "Not a valid regular expression"),
    ("x*", "matches empty text"),
    ("a" * 301, "At most 300"),
])
def test_a_team_pattern_that_cannot_work_is_refused_with_the_reason(pattern, problem):
    with pytest.raises(ValidationError, match=problem):
        check_pattern(pattern)
    check_pattern(CUSTOM_PATTERN[1])


def test_the_admin_adds_a_team_pattern_refuses_a_broken_one_and_audits_it(admin_client):
    url = reverse("admin:dashboard_findingpattern_add")
    bad = admin_client.post(url, {"name": "Broken", "pattern": "EMP-(", "enabled": "on"})
    assert bad.status_code == 200 and "Not a valid regular expression" in bad.content.decode()
    good = admin_client.post(url, {"name": CUSTOM_PATTERN[0], "pattern": CUSTOM_PATTERN[1],
                                   "enabled": "on"})
    assert good.status_code == 302
    assert list(FindingPattern.objects.values_list("name", flat=True)) == [CUSTOM_PATTERN[0]]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_CHANGE,
                                     object_type="findingpattern").exists()
    # Findings are shown there, never added or changed.
    assert admin_client.get(reverse("admin:dashboard_finding_add")).status_code == 403


@pytest.mark.parametrize(("raw", "problem"), [
    ("{not json", "is not JSON"),
    ('["EMP-[0-9]+"]', "must be a JSON object"),
    ('{"Employee id": "EMP-("}', "not a valid regular expression"),
    ('{"Anything": ".*"}', "matches empty text"),
])
def test_a_broken_patterns_setting_stops_the_start_with_the_reason(raw, problem):
    with pytest.raises(ImproperlyConfigured, match=problem):
        finding_patterns(raw)
    assert finding_patterns('{"Employee id": "EMP-[0-9]{6}"}') == {"Employee id": "EMP-[0-9]{6}"}
    assert finding_patterns("") == {}


def test_a_title_taken_from_a_line_holding_a_finding_shows_it_masked(owner):
    """A Convai session's title is its first line: planted there, an e-mail address shows
    in every list as its masked preview. A title from before findings is masked by
    `manage.py find`, and erasing the line gives the session a title from what is left."""
    from dashboard.mirror import purge
    from dashboard.mirror.titles import derived_title
    from dashboard.models import Conversation
    from providers.fakes.planted import line

    fake = FAKES["convai"](seed=4)
    placed = fake.plant(["email"])  # the first line a person wrote, in the first session
    with fake.serve() as server:
        sync_now(connect(owner, fake, server.url))
    value = PLANTED["email"][0]
    finding = Finding.objects.select_related("conversation").get()
    conv = finding.conversation
    assert conv.provider_id == placed["email"].split(":")[0]
    assert value not in conv.title and finding.preview in conv.title

    Conversation.objects.filter(pk=conv.pk).update(title=derived_title(line("email")))
    call_command("find")
    conv.refresh_from_db()
    assert value not in conv.title and finding.preview in conv.title

    purge.purge(messages=[finding.message_id])
    conv.refresh_from_db()
    assert finding.preview not in conv.title and conv.title


def test_a_detector_failing_in_the_scan_thread_fails_the_sync_and_writes_nothing(
        owner, planted_fake, planted, monkeypatch):
    """Messages are scanned in a thread beside the copy; what goes wrong there is the
    sync's error, not lost with the thread."""
    from dashboard.lib.detect import Scanner

    def broken(self, texts):  # type: ignore[no-untyped-def]
        raise RuntimeError("detector exploded")
        yield  # pragma: no cover - a generator, as scan_many is

    from dashboard.mirror import sync

    monkeypatch.setattr(Scanner, "scan_many", broken)
    with planted_fake.serve() as server:
        connection = connect(owner, planted_fake, server.url)
        run = sync.perform_sync(sync.start(connection).pk)
    assert run.status == "failed" and "RuntimeError" in run.error
    assert not Message.objects.exists() and not Finding.objects.exists()
