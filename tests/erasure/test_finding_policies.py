"""Retention policies on findings ("erase any message holding a secret, daily"): only the
messages holding a finding of the kind go, under the same rules as any policy: the owner's
access, the keep-list, approval, one job per held selection."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dashboard.erasure import retention, worker
from dashboard.models import (
    Conversation,
    ErasureJob,
    Finding,
    Message,
    MirrorState,
    PolicyRun,
    RetentionPolicy,
)

pytestmark = pytest.mark.django_db


def policy_on(connection, kind: str = "secret", **fields) -> RetentionPolicy:  # type: ignore[no-untyped-def]
    fields.setdefault("mode", RetentionPolicy.Mode.AUTOMATIC)
    fields.setdefault("older_than_days", 1)
    return RetentionPolicy.objects.create(
        name=f"No {kind} kept", owner=connection.owner, scope=RetentionPolicy.Scope.CONNECTION,
        connection=connection, finding_kind=kind, **fields)


def run_now(policy: RetentionPolicy) -> PolicyRun:
    return retention.perform_run(retention.start_run(policy).pk, sync_first=False)


def test_only_the_messages_holding_that_kind_are_erased(planted_cai, planted, planted_fake):
    conversations = planted_cai.conversations.count()
    run = run_now(policy_on(planted_cai))
    assert run.status == PolicyRun.Status.CREATED, run.note
    [job] = ErasureJob.objects.filter(request=run.request)
    target = Message.objects.get(provider_id=planted["secret"])
    assert list(job.items.values_list("kind", "message_id")) == [("message", target.pk)]
    assert job.scope["finding_kind"] == "secret"
    assert worker.work_job(job.pk).status == ErasureJob.Status.DONE
    held = {m for c in planted_cai.conversations.all()
            for m in planted_fake.message_ids(c.provider_id)}
    assert planted["secret"] not in held and planted["card"] in held
    assert planted_cai.conversations.filter(mirror_state=MirrorState.PRESENT).count() == \
        conversations
    assert not Finding.objects.filter(kind="secret").exists()
    assert run_now(policy_on(planted_cai)).status == PolicyRun.Status.NOTHING


def test_messages_newer_than_the_age_are_left(planted_cai):
    policy = policy_on(planted_cai, older_than_days=36500)
    assert not retention.matching(policy).exists()
    assert run_now(policy).status == PolicyRun.Status.NOTHING


def test_the_keep_list_still_holds_for_a_findings_policy(planted_cai, planted, planted_fake):
    target = Message.objects.get(provider_id=planted["secret"])
    Conversation.objects.filter(pk=target.conversation_id).update(protected=True)
    run = run_now(policy_on(planted_cai))
    assert run.status == PolicyRun.Status.NOTHING
    assert not ErasureJob.objects.exclude(status=ErasureJob.Status.DRAFT).exists()
    assert planted["secret"] in planted_fake.message_ids(target.conversation.provider_id)


def test_a_held_findings_job_is_not_frozen_again_by_the_next_run(planted_cai):
    policy = policy_on(planted_cai, "email", mode=RetentionPolicy.Mode.APPROVE)
    first = run_now(policy)
    assert first.status == PolicyRun.Status.CREATED
    assert ErasureJob.objects.get(request=first.request).status == \
        ErasureJob.Status.AWAITING_APPROVAL
    assert run_now(policy).status == PolicyRun.Status.NOTHING


def test_an_owner_without_the_operator_role_runs_nothing(planted_cai):
    planted_cai.owner.groups.clear()
    run = run_now(policy_on(planted_cai))
    assert run.status == PolicyRun.Status.REFUSED and not ErasureJob.objects.exists()


def test_the_form_and_page_name_the_kind(client, planted_cai):
    client.force_login(planted_cai.owner)
    response = client.post(reverse("policy_add"), {
        "name": "Keys", "scope": "connection", "connection": planted_cai.pk,
        "older_than_days": 1, "finding_kind": "secret", "mode": "approve",
        "every_hours": 24, "enabled": "on"})
    assert response.status_code == 302
    policy = RetentionPolicy.objects.get()
    assert policy.finding_kind == "secret"
    page = client.get(reverse("policy", args=[policy.pk])).content.decode()
    assert "messages holding a finding of the kind “secret or credential”" in page
