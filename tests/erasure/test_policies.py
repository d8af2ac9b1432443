"""Retention policies: scope and age, keyword rules and the keep-list, sync first, a dry-run
report, a job held for approval or run automatically under the usual rules, refusal when
the owner lost the role or access, the schedule, and the pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from dashboard import tasks
from dashboard.erasure import retention, worker
from dashboard.lib import queue
from dashboard.models import (
    Conversation,
    ErasureItem,
    ErasureJob,
    Message,
    PolicyRun,
    RetentionPolicy,
    SyncRun,
)
from providers.fakes.convai import ConvaiFake
from tests.helpers import with_role

pytestmark = pytest.mark.django_db
State = ErasureItem.State


@pytest.fixture
def convai_fake() -> ConvaiFake:
    # Sessions started 0-180 days before today, so some are past 90 days and some are not.
    return ConvaiFake(seed=7, characters=2, sessions=8, now=timezone.now())


def old(connection, days: int = 90):  # type: ignore[no-untyped-def]
    cutoff = timezone.now() - timedelta(days=days)
    return connection.conversations.filter(mirror_state="present", last_message_at__lt=cutoff)


def make_policy(mirror, **fields) -> RetentionPolicy:  # type: ignore[no-untyped-def]
    fields.setdefault("scope", RetentionPolicy.Scope.CONNECTION)
    fields.setdefault("connection", mirror)
    fields.setdefault("owner", mirror.owner)
    return RetentionPolicy.objects.create(name="Nothing older than 90 days", **fields)


def run_now(policy: RetentionPolicy, sync_first: bool = True) -> PolicyRun:
    return retention.perform_run(retention.start_run(policy).pk, sync_first=sync_first)


def test_a_run_syncs_first_reports_and_holds_the_job_for_an_approver(synced, convai_fake):
    expected = set(old(synced).values_list("provider_id", flat=True))
    assert expected and expected != set(synced.conversations.values_list("provider_id",
                                                                           flat=True))
    syncs = SyncRun.objects.count()
    run = run_now(make_policy(synced))
    assert run.status == PolicyRun.Status.CREATED, run.note
    assert SyncRun.objects.count() == syncs + 1  # synced before deciding
    assert run.report["conversations"] == len(expected)
    [job] = ErasureJob.objects.filter(request=run.request)
    assert job.status == ErasureJob.Status.AWAITING_APPROVAL
    assert job.requested_by == synced.owner and job.scope["policy"] == run.policy_id
    assert set(job.items.values_list("provider_id", flat=True)) == expected
    worker.work_job(job.pk)
    assert not convai_fake.deletes  # nothing is sent before an approver says so


def test_an_automatic_policy_erases_what_is_too_old_and_nothing_newer(synced, convai_fake):
    expected = set(old(synced).values_list("provider_id", flat=True))
    run = run_now(make_policy(synced, mode=RetentionPolicy.Mode.AUTOMATIC), sync_first=False)
    [job] = ErasureJob.objects.filter(request=run.request)
    assert worker.work_job(job.pk).status == ErasureJob.Status.DONE
    assert set(convai_fake.deletes) == expected


def test_an_automatic_policy_still_needs_approval_above_the_threshold(synced, settings):
    settings.LETHE_APPROVAL_THRESHOLD = 1
    run = run_now(make_policy(synced, mode=RetentionPolicy.Mode.AUTOMATIC), sync_first=False)
    assert {j.status for j in ErasureJob.objects.filter(request=run.request)} == {
        ErasureJob.Status.AWAITING_APPROVAL}


def test_an_automatic_policy_waits_out_the_cancel_window(synced, settings, convai_fake):
    settings.LETHE_CANCEL_WINDOW = 600
    run = run_now(make_policy(synced, mode=RetentionPolicy.Mode.AUTOMATIC), sync_first=False)
    [job] = ErasureJob.objects.filter(request=run.request)
    assert job.status == ErasureJob.Status.SCHEDULED
    worker.work_job(job.pk)
    assert not convai_fake.deletes


def test_protected_and_pinned_conversations_are_skipped_with_the_reason(synced, convai_fake):
    first, second = old(synced).order_by("id")[:2]
    Conversation.objects.filter(pk=first.pk).update(protected=True)
    Message.objects.filter(conversation=second).update(pinned=True)
    run = run_now(make_policy(synced, mode=RetentionPolicy.Mode.AUTOMATIC), sync_first=False)
    assert run.report["protected"] == 1
    [job] = ErasureJob.objects.filter(request=run.request)
    worker.work_job(job.pk)
    assert job.items.get(conversation=first).state == State.SKIPPED
    assert job.items.get(conversation=second).state == State.SKIPPED
    assert first.provider_id not in convai_fake.deletes
    assert second.provider_id not in convai_fake.deletes


def test_keyword_rules_narrow_the_policy_and_keep_words_protect(synced):
    target, kept, *_ = old(synced).order_by("id")
    Message.objects.filter(conversation=target).update(text="ticket ZEBRA-991 resolved")
    Message.objects.filter(conversation=kept).update(text="ticket ZEBRA-991 legal hold")
    policy = make_policy(synced, keywords="zebra-991", keep_keywords="legal hold")
    assert list(retention.matching(policy)) == [target]


def test_a_policy_whose_owner_lost_the_operator_role_does_nothing_and_says_why(synced):
    synced.owner.groups.clear()
    run = run_now(make_policy(synced))
    assert run.status == PolicyRun.Status.REFUSED
    assert "operator role" in run.note
    assert not ErasureJob.objects.exists() and SyncRun.objects.count() == 1


def test_a_policy_whose_owner_lost_access_does_nothing_and_says_why(synced, django_user_model):
    other = with_role(django_user_model.objects.create_user("ex-member"), "operator")
    team = Group.objects.create(name="support")
    synced.shared_with.add(team)
    other.groups.add(team)
    policy = RetentionPolicy.objects.create(name="p", owner=other, connection=synced)
    other.groups.remove(team)
    run = run_now(policy)
    assert run.status == PolicyRun.Status.REFUSED and "no longer has access" in run.note
    assert not ErasureJob.objects.exists()


def test_provider_and_all_scopes_cover_only_connections_the_owner_sees(synced, convai_server,
                                                                       django_user_model):
    from tests.helpers import make_connection

    stranger = with_role(django_user_model.objects.create_user("stranger"), "operator")
    theirs = make_connection(stranger, convai_server.url)
    for scope in (RetentionPolicy.Scope.ALL, RetentionPolicy.Scope.PROVIDER):
        policy = make_policy(synced, scope=scope, provider="convai", connection=None)
        assert list(retention.connections_in_scope(policy)) == [synced]
        assert not retention.matching(policy).filter(connection=theirs).exists()


def test_a_character_policy_takes_only_that_characters_conversations(synced):
    character = synced.characters.order_by("id").first()
    policy = make_policy(synced, scope=RetentionPolicy.Scope.CHARACTER, connection=None,
                         character=character)
    found = retention.matching(policy)
    assert found.exists()
    assert set(found.values_list("character_id", flat=True)) == {character.pk}


def test_beat_queues_each_due_policy_once_and_moves_its_schedule(
        synced, monkeypatch, django_capture_on_commit_callbacks):
    sent: list[int] = []
    monkeypatch.setattr(queue, "dispatch", lambda task, pk, copies=1: sent.append(pk))
    due = make_policy(synced)
    later = make_policy(synced, next_run_at=timezone.now() + timedelta(hours=1))
    make_policy(synced, enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.run_due_policies() == 1
        assert retention.queue_due_runs() == 0  # not due again until its interval is over
    assert [PolicyRun.objects.get(pk=pk).policy for pk in sent] == [due]
    due.refresh_from_db()
    assert due.next_run_at > timezone.now() + timedelta(hours=23)
    assert not later.runs.exists()


def test_a_run_is_carried_out_once_however_often_its_task_arrives(synced):
    policy = make_policy(synced)
    run = retention.start_run(policy)
    retention.perform_run(run.pk, sync_first=False)
    retention.perform_run(run.pk, sync_first=False)
    assert ErasureJob.objects.values("request").distinct().count() == 1


def test_the_policy_pages_show_last_runs_and_what_it_would_erase_now(client, synced):
    policy = make_policy(synced)
    client.force_login(synced.owner)
    page = client.get(reverse("policy", args=[policy.pk])).content.decode()
    waiting = old(synced).count()
    assert f"<strong data-would>{waiting}</strong> conversation" in page
    assert "No runs yet" in page
    run_now(policy, sync_first=False)
    page = client.get(reverse("policy", args=[policy.pk])).content.decode()
    assert "Job created" in page
    # What waits in the held job is not counted twice, nor read as "nothing is old enough".
    assert "<strong data-would>0</strong> conversations" in page
    assert f"<strong>{waiting}</strong> old enough conversations are waiting for approval" \
        in page and "Nothing is old enough" not in page
    listing = client.get(reverse("policies")).content.decode()
    assert policy.name in listing


def test_an_operator_makes_a_policy_through_the_form(client, synced):
    client.force_login(synced.owner)
    response = client.post(reverse("policy_add"), {
        "name": "Support bots", "scope": "connection", "connection": synced.pk,
        "older_than_days": 30, "mode": "approve", "every_hours": 24, "enabled": "on"})
    assert response.status_code == 302
    policy = RetentionPolicy.objects.get()
    assert policy.owner == synced.owner and policy.connection == synced
    bad = client.post(reverse("policy_add"), {"name": "x", "scope": "connection",
                                              "older_than_days": 30, "mode": "approve",
                                              "every_hours": 24})
    assert bad.status_code == 200 and "Choose the connection" in bad.content.decode()


def test_someone_else_cannot_run_or_change_a_policy_they_can_see(client, synced,
                                                                  django_user_model):
    member = with_role(django_user_model.objects.create_user("member"), "operator")
    team = Group.objects.create(name="support")
    synced.shared_with.add(team)
    member.groups.add(team)
    policy = make_policy(synced)
    client.force_login(member)
    assert client.get(reverse("policy", args=[policy.pk])).status_code == 200
    assert client.post(reverse("policy_run", args=[policy.pk])).status_code == 404
    assert client.get(reverse("policy_edit", args=[policy.pk])).status_code == 404
    assert not policy.runs.exists()


def test_a_second_run_does_not_freeze_again_what_waits_in_a_held_job(synced):
    policy = make_policy(synced)
    first = run_now(policy, sync_first=False)
    second = run_now(policy, sync_first=False)
    assert first.status == PolicyRun.Status.CREATED
    assert second.status == PolicyRun.Status.NOTHING and second.request is None
    ErasureJob.objects.filter(request=first.request).update(status=ErasureJob.Status.CANCELLED)
    assert run_now(policy, sync_first=False).status == PolicyRun.Status.CREATED


@pytest.mark.parametrize("mode", [RetentionPolicy.Mode.APPROVE, RetentionPolicy.Mode.AUTOMATIC])
def test_a_run_with_nothing_to_send_makes_no_job_whatever_its_mode(synced, mode):
    # Every old session holds a pinned message, and Convai erases whole sessions only.
    for conv in old(synced):
        Message.objects.filter(conversation=conv, position=0).update(pinned=True)
    run = run_now(make_policy(synced, mode=mode), sync_first=False)
    assert run.status == PolicyRun.Status.NOTHING and "pinned" in run.note
    assert not ErasureJob.objects.exists()  # not even a draft left behind


def test_a_policy_that_cannot_be_scheduled_stops_no_other(synced, monkeypatch,
                                                          django_capture_on_commit_callbacks):
    broken, fine = make_policy(synced), make_policy(synced)
    real = RetentionPolicy.interval

    def interval(self):  # type: ignore[no-untyped-def]
        if self.pk == broken.pk:
            raise OverflowError("date value out of range")
        return real.fget(self)

    monkeypatch.setattr(RetentionPolicy, "interval", property(interval))
    with django_capture_on_commit_callbacks(execute=False):
        assert retention.queue_due_runs() == 1
    assert fine.runs.get().status == PolicyRun.Status.QUEUED
    failed = broken.runs.get()
    assert failed.status == PolicyRun.Status.FAILED and "OverflowError" in failed.note
