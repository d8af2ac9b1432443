"""The preview says exactly what confirming sends: pinned messages are kept message by
message, every number follows the answer about them, the server holds the person to the
numbers they saw, nothing is frozen twice, and nothing is queued with nothing to send."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from dashboard.erasure import freeze, lifecycle, worker
from dashboard.mirror import sync
from dashboard.models import (
    Connection,
    Conversation,
    ErasureItem,
    ErasureJob,
    Message,
    MirrorState,
)
from providers.fakes.characterai import CharacterAIFake
from tests.helpers import confirmed_job, connect, draft_jobs, shown

pytestmark = pytest.mark.django_db
State = ErasureItem.State


@pytest.fixture
def cai_fake() -> CharacterAIFake:
    return CharacterAIFake(seed=9, characters=1, chats=2, turns=(5, 5), archived=0, pinned=0)


@pytest.fixture
def cai(owner, cai_fake: CharacterAIFake) -> Iterator[Connection]:  # type: ignore[no-untyped-def]
    with cai_fake.serve() as server:
        connection = connect(owner, cai_fake, server.url)
        assert sync.perform_sync(sync.start(connection).pk).status == "ok"
        yield connection


@pytest.fixture
def pinned_chat(cai: Connection, cai_fake: CharacterAIFake) -> Conversation:
    """The first chat, with its second message pinned at the provider and in the mirror."""
    conv = cai.conversations.order_by("id").first()
    pinned = conv.messages.order_by("position")[1]
    with cai_fake.lock:
        next(t for t in cai_fake.find_chat(conv.provider_id).turns
             if t.id == pinned.provider_id).pinned = True
    Message.objects.filter(pk=pinned.pk).update(pinned=True)
    return conv


def test_a_chat_another_job_took_since_the_freeze_is_not_sent_with_pinned_included(
        cai, pinned_chat, settings):
    """Frozen skipped until pinned messages are included, the whole chat is booked by
    another job meanwhile: including them must not put it in a second unfinished job."""
    settings.LETHE_CANCEL_WINDOW = 600
    late = draft_jobs(cai, 2)
    [taken] = lifecycle.confirm(draft_jobs(cai, 2), dry_run=False, enqueue=False,
                                include_pinned=True)
    with pytest.raises(freeze.SelectionError, match="Nothing would be sent"):
        lifecycle.confirm(late, dry_run=False, enqueue=False, include_pinned=True)
    open_ = ErasureItem.objects.filter(conversation=pinned_chat, kind="conversation",
                                       state=State.PENDING, job__status__in=freeze.HOLDING)
    assert list(open_.values_list("job_id", flat=True)) == [taken.pk]


def test_a_chat_put_on_the_keep_list_after_the_freeze_stays_out_with_pinned_included(
        cai, pinned_chat):
    """Frozen skipped until pinned messages are included, then protected: including them
    must not bring it back, for real or in a dry run."""
    real, rehearsal = draft_jobs(cai, 1), draft_jobs(cai, 1)
    Conversation.objects.filter(pk=pinned_chat.pk).update(protected=True)
    for jobs, dry_run in ((real, False), (rehearsal, True)):
        with pytest.raises(freeze.SelectionError, match="Nothing would be sent"):
            lifecycle.confirm(jobs, dry_run=dry_run, enqueue=False, include_pinned=True)


def test_a_chat_left_with_only_its_pinned_message_is_not_said_to_be_split(cai, pinned_chat):
    """Its other messages erased before, keeping pinned messages sends nothing of it: the
    preview must not say its other messages go one by one."""
    from dashboard.erasure import preview

    pinned_chat.messages.filter(pinned=False).update(mirror_state=MirrorState.ERASED)
    [job] = draft_jobs(cai, 1)
    shown_numbers = preview.summary(job, include_pinned=False)
    assert shown_numbers["split"] == 0 and shown_numbers["count"] == 0


def test_keeping_pinned_messages_erases_the_others_one_by_one(cai, cai_fake, pinned_chat):
    pinned = pinned_chat.messages.get(pinned=True)
    jobs = draft_jobs(cai, 2)
    counts = freeze.sendable_counts(jobs)
    # Kept: the other chat whole, and 4 single messages of the one holding a pinned one.
    assert (counts.pinned_kept, counts.pinned_included, counts.pinned_choice) == (5, 2, True)
    [job] = lifecycle.confirm(jobs, dry_run=False, enqueue=False)
    job = worker.work_job(job.pk)
    assert job.status == ErasureJob.Status.DONE
    assert cai_fake.message_ids(pinned_chat.provider_id) == [pinned.provider_id]
    assert job.items.get(message=pinned).state == State.SKIPPED
    assert job.items.get(kind="conversation", conversation=pinned_chat).state == State.SKIPPED
    pinned.refresh_from_db()
    assert pinned.text and pinned.mirror_state == "present"


def test_including_pinned_messages_erases_the_chat_whole(cai, cai_fake, pinned_chat):
    [job] = lifecycle.confirm(draft_jobs(cai, 2), dry_run=False, include_pinned=True,
                              enqueue=False)
    assert set(job.items.values_list("kind", flat=True)) == {"conversation"}
    job = worker.work_job(job.pk)
    assert job.counts()[State.VERIFIED] == 2
    assert cai_fake.message_ids(pinned_chat.provider_id) == []


def test_the_preview_numbers_follow_the_pinned_checkbox(client, cai, pinned_chat):
    [job] = draft_jobs(cai, 2)
    url = reverse("erase_preview", args=[job.request])
    client.force_login(cai.owner)
    kept = client.get(url).content.decode()
    assert "Erase 5 at the provider" in kept and "Include pinned messages" in kept
    assert ("1 conversation holds pinned messages: its other messages are erased one by "
            "one; 1 pinned message and the conversation itself stay.") in kept
    included = client.get(url + "?include_pinned=1", HTTP_HX_REQUEST="true").content.decode()
    assert "Erase 2 at the provider" in included and 'value="2"' in included
    assert "holds pinned messages" not in included


def _rehearsed_then_pinned(cai: Connection, kind: str) -> list[ErasureJob]:
    """A dry run over both chats whole, or over the first one's messages, a message of the
    first chat pinned since, and the real run drafted from it: the items skipped as pinned
    then carry no choice (``for_real``), unlike a fresh freeze's."""
    conv = cai.conversations.order_by("id").first()
    if kind == "conversation":
        request = freeze.conversations(cai.owner, cai.conversations.all(), {})
    else:
        request = freeze.messages(cai.owner, conv.messages.all(), {})
    [dry] = lifecycle.confirm(list(ErasureJob.objects.filter(request=request)), dry_run=True,
                              enqueue=False)
    dry = worker.work_job(dry.pk)
    Message.objects.filter(pk=conv.messages.order_by("position")[1].pk).update(pinned=True)
    return list(ErasureJob.objects.filter(request=freeze.for_real(cai.owner, [dry])))


@pytest.mark.parametrize("shape", ["fresh", "real conversation", "real messages"])
@pytest.mark.parametrize("include_pinned", [False, True])
def test_the_preview_counts_are_the_items_confirming_sends(cai, pinned_chat, shape,
                                                           include_pinned):
    """Invariant 10, against the items themselves: the preview derives its numbers from a
    few aggregates (kinds from the per-conversation counts, pinned messages from the
    skipped reasons), so each is checked here against a plain count, for a fresh freeze
    and for a dry run repeated for real, then confirmed with the total it showed."""
    from dashboard.erasure import preview

    Message.objects.filter(pinned=True).update(pinned=False)  # each shape pins its own
    if shape == "fresh":
        Message.objects.filter(pk=pinned_chat.messages.order_by("position")[1].pk).update(
            pinned=True)
        jobs = draft_jobs(cai, 2)
    else:
        jobs = _rehearsed_then_pinned(cai, shape.split()[1].rstrip("s"))
    [job] = jobs
    shown_numbers = preview.summary(job, include_pinned)
    items = job.items.all()
    going = items.filter(freeze.sent(include_pinned))
    assert shown_numbers["count"] == going.count()
    assert shown_numbers["conversations"] == going.filter(kind="conversation").count()
    assert shown_numbers["messages"] == going.filter(kind="message").count()
    whole_kept = set(items.filter(kind="conversation", state=State.SKIPPED,
                                  detail=freeze.PINNED).values_list("conversation_id", flat=True))
    split = whole_kept & set(going.filter(kind="message").values_list("conversation_id",
                                                                      flat=True))
    assert shown_numbers["split"] == (0 if include_pinned else len(split))
    assert shown_numbers["pinned_kept"] == (
        0 if include_pinned else items.filter(detail=freeze.PINNED_MESSAGE).count())
    if shape == "fresh" and not include_pinned:
        assert shown_numbers["split"] == 1 and shown_numbers["pinned_kept"] == 1
    [confirmed] = lifecycle.confirm(jobs, dry_run=False, include_pinned=include_pinned,
                                    expected=shown_numbers["count"], enqueue=False)
    assert confirmed.items.filter(state=State.PENDING).count() == shown_numbers["count"]


def test_the_server_holds_the_person_to_the_numbers_they_saw(client, cai, pinned_chat,
                                                             settings):
    settings.LETHE_TYPED_CONFIRM_THRESHOLD = 3
    [job] = draft_jobs(cai, 2)
    url = reverse("erase_preview", args=[job.request])
    client.force_login(cai.owner)
    # The page said 5 (pinned kept); the post asks to include them, which sends 2.
    client.post(url, {"mode": "erase", "include_pinned": "1", **shown(5),
                      "typed_count": "5"})
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.DRAFT
    # Typed against what is really sent, whatever the options.
    client.post(url, {"mode": "erase", **shown(5), "typed_count": "2"})
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.DRAFT
    client.post(url, {"mode": "erase", **shown(5), "typed_count": "5"})
    job.refresh_from_db()
    assert job.status != ErasureJob.Status.DRAFT and not job.include_pinned


def test_nothing_to_send_is_refused_at_the_freeze_and_at_the_confirmation(synced):
    synced.conversations.update(protected=True)
    with pytest.raises(freeze.SelectionError, match="protected"):
        freeze.conversations(synced.owner, synced.conversations.all(), {})
    assert not ErasureJob.objects.exists()


def test_what_an_unfinished_job_holds_is_not_frozen_again(synced, settings):
    settings.LETHE_APPROVAL_ALL = True
    held = confirmed_job(synced, 2)
    assert held.status == ErasureJob.Status.AWAITING_APPROVAL
    draft_jobs(synced, 3)  # a draft holds nothing
    [again] = draft_jobs(synced, 3)
    states = dict(again.items.values_list("conversation_id", "detail"))
    first, second, third = synced.conversations.order_by("id")[:3]
    assert states[first.pk] == states[second.pk] == f"{freeze.HELD}{held.pk}"
    assert states[third.pk] == ""
    assert freeze.sendable_counts([again]).pinned_kept == 1


def test_the_command_takes_the_pinned_answer_and_fails_when_nothing_was_erased(
        cai, cai_fake, pinned_chat):
    out = io.StringIO()
    call_command("erase", str(cai.pk), "--conversations", pinned_chat.provider_id, "--yes",
                 stdout=out)
    assert cai_fake.message_ids(pinned_chat.provider_id) == [
        pinned_chat.messages.get(pinned=True).provider_id]
    with pytest.raises(CommandError, match="Nothing was erased"):
        # Only the pinned message is left, and it is kept: nothing of what was asked goes.
        call_command("erase", str(cai.pk), "--messages",
                     pinned_chat.messages.get(pinned=True).provider_id, "--yes",
                     stdout=io.StringIO())
    call_command("erase", str(cai.pk), "--conversations", pinned_chat.provider_id,
                 "--include-pinned", "--yes", stdout=out)
    assert cai_fake.message_ids(pinned_chat.provider_id) == []


def test_the_command_fails_when_the_provider_erased_nothing(synced, convai_fake):
    convai_fake.plan_gated_delete = True
    session = synced.conversations.order_by("id").first().provider_id
    with pytest.raises(CommandError, match="erased nothing of what was asked"):
        call_command("erase", str(synced.pk), "--conversations", session, "--yes",
                     stdout=io.StringIO())
