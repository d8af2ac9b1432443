"""A request is one handle: a dry run leads on to the real run of the same selection, a
request over several connections is watched, cancelled and receipted together, and an
approval is decided by someone who sees what it sends."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from dashboard.erasure import freeze, lifecycle, worker
from dashboard.mirror import sync
from dashboard.models import AuditEvent, Conversation, ErasureItem, ErasureJob, JobNotification
from tests.helpers import confirmed_job, make_connection, share, shown, with_role

pytestmark = pytest.mark.django_db
State = ErasureItem.State


def test_a_dry_run_leads_on_to_the_real_run_of_the_same_items(client, synced, convai_fake):
    dry = worker.work_job(confirmed_job(synced, 3, dry_run=True).pk)
    ErasureJob.objects.filter(pk=dry.pk).update(export_sha256="ab" * 32)
    client.force_login(synced.owner)
    page = client.get(reverse("job", args=[dry.pk])).content.decode()
    assert "Erase these 3 for real" in page
    response = client.post(reverse("request_action", args=[dry.request, "for_real"]))
    real = ErasureJob.objects.exclude(pk=dry.pk).get()
    assert response["Location"] == reverse("erase_preview", args=[real.request])
    assert not real.dry_run and real.status == ErasureJob.Status.DRAFT
    assert sorted(real.items.values_list("provider_id", flat=True)) == sorted(
        dry.items.values_list("provider_id", flat=True))
    assert real.export_sha256 == "ab" * 32  # the export made before counts for it
    assert real.scope["after_dry_run"] == str(dry.request)
    client.post(response["Location"], {"mode": "erase", **shown(3)})
    real = worker.work_job(real.pk)
    assert real.counts()[State.VERIFIED] == 3 and len(convai_fake.deletes) == 3


def test_the_real_run_skips_what_was_erased_since_the_dry_run(client, synced):
    dry = worker.work_job(confirmed_job(synced, 2, dry_run=True).pk)
    worker.work_job(confirmed_job(synced, 1).pk)  # the first one went meanwhile
    [real] = ErasureJob.objects.filter(request=freeze.for_real(synced.owner, [dry]))
    states = sorted(real.items.values_list("state", "detail"))
    assert states == [(State.PENDING, ""), (State.SKIPPED, freeze.NO_LONGER_PRESENT)]


@pytest.fixture
def two(synced, convai_server):  # type: ignore[no-untyped-def]
    second = make_connection(synced.owner, convai_server.url)
    second.label = "Second Convai"
    second.save()
    assert sync.perform_sync(sync.start(second).pk).status == "ok"
    return synced, second


def test_a_request_over_two_connections_is_watched_and_cancelled_together(client, two,
                                                                          settings):
    settings.LETHE_CANCEL_WINDOW = 600
    synced, second = two
    client.force_login(synced.owner)
    ids = [synced.conversations.first().pk, second.conversations.first().pk]
    preview = client.post(reverse("erase_selected"), {"conversation": ids})
    response = client.post(preview["Location"], {"mode": "erase", **shown(2)})
    jobs = list(ErasureJob.objects.all())
    assert len(jobs) == 2 and response["Location"] == reverse("request", args=[jobs[0].request])
    page = client.get(response["Location"]).content.decode()
    assert "Second Convai" in page and "Team Convai" in page and "Cancel the whole request" in page
    client.post(reverse("request_action", args=[jobs[0].request, "cancel"]))
    assert set(ErasureJob.objects.values_list("status", flat=True)) == {"cancelled"}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ERASURE_CANCELLED).count() == 2


@pytest.fixture
def approver(synced):  # type: ignore[no-untyped-def]
    person = get_user_model().objects.create_user("approver", password="x-appr-123")
    share(synced, person)
    return with_role(person, "approver")


def test_an_approver_sees_what_is_sent_and_who_may_decide(client, synced, approver, settings):
    settings.LETHE_APPROVAL_ALL = True
    job = confirmed_job(synced, 2)
    client.force_login(approver)
    listed = client.get(reverse("approvals")).content.decode()
    assert f"#{job.pk}" in listed and "Review and decide" in listed
    page = client.get(reverse("job", args=[job.pk])).content.decode()
    assert "What approving sends" in page and "<strong>2</strong> whole conversations" in page
    assert "Who can approve it: approver" in page and "Approve: send 2 items" in page
    client.force_login(synced.owner)
    own = client.get(reverse("job", args=[job.pk])).content.decode()
    assert "Who can approve it: approver" in own and "Approve: send" not in own


def test_nobody_who_cannot_see_the_connection_can_approve_and_the_page_says_so(
        client, synced, settings, django_user_model):
    settings.LETHE_APPROVAL_ALL = True
    stranger = with_role(django_user_model.objects.create_user("stranger", password="x-1"),
                         "approver")
    job = confirmed_job(synced, 1)
    with pytest.raises(lifecycle.NotAllowed):
        lifecycle.approve(job, stranger)
    client.force_login(synced.owner)
    assert "Nobody can approve it yet" in client.get(reverse("job", args=[job.pk])
                                                     ).content.decode()


def test_a_rejection_needs_a_reason_sends_nothing_and_tells_the_requester(
        client, synced, approver, settings, convai_fake, django_capture_on_commit_callbacks):
    settings.LETHE_APPROVAL_ALL = True
    job = confirmed_job(synced, 2)
    client.force_login(approver)
    client.post(reverse("job_action", args=[job.pk, "reject"]), {"reason": "  "})
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.AWAITING_APPROVAL
    with django_capture_on_commit_callbacks(execute=False) as sent:
        client.post(reverse("job_action", args=[job.pk, "reject"]),
                    {"reason": "Legal hold on these sessions"})
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.CANCELLED and job.cancelled_by == approver
    assert job.rejected_reason == "Legal hold on these sessions"
    assert set(job.items.values_list("state", flat=True)) == {State.SKIPPED}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ERASURE_REJECTED).exists()
    assert sent  # the requester's notification is queued
    worker.work_job(job.pk)
    assert not convai_fake.deletes
    client.force_login(synced.owner)
    page = client.get(reverse("job", args=[job.pk])).content.decode()
    assert "Legal hold on these sessions" in page
    assert "<dt>Rejected by</dt>" in page and "Cancelled by" not in page
    from dashboard.erasure import notify
    notify.deliver(job.pk)
    assert JobNotification.objects.get(job=job, event=notify.REJECTED).sent_at


def test_the_demo_has_a_second_person_who_can_approve(db):
    call_command("demo", stdout=io.StringIO())
    approver = get_user_model().objects.get(username="approver")
    demo = get_user_model().objects.get(username="demo")
    assert approver.check_password("lethe-demo")
    for connection in demo.connections.all():
        assert connection.shared_with.filter(user=approver).exists()
    assert Conversation.objects.count() == 0  # nothing mirrored until the demo syncs
    # ... which the first start asks for: each new connection has its first sync queued.
    assert all(c.sync_runs.filter(status="queued").count() == 1
               for c in demo.connections.all())
    call_command("demo", stdout=io.StringIO())  # run again: nothing more is queued
    assert all(c.sync_runs.count() == 1 for c in demo.connections.all())


def test_the_real_run_respects_a_keep_list_made_after_the_dry_run(synced):
    dry = worker.work_job(confirmed_job(synced, 2, dry_run=True).pk)
    first = synced.conversations.order_by("id").first()
    Conversation.objects.filter(pk=first.pk).update(protected=True)
    [real] = ErasureJob.objects.filter(request=freeze.for_real(synced.owner, [dry]))
    assert real.items.get(conversation=first).detail == freeze.PROTECTED
    assert freeze.sendable_counts([real]).pinned_kept == 1


def test_a_connection_with_nothing_to_send_gets_no_job_when_the_rest_is_confirmed(
        synced, convai_fake, convai_server):
    """A request over two connections where everything picked in the first is already held
    by another job: confirming queues the second connection's job only."""
    from tests.helpers import connect

    other = connect(synced.owner, convai_fake, convai_server.url, "Second Convai")
    assert sync.perform_sync(sync.start(other).pk).status == "ok"
    held = confirmed_job(synced, 1)  # holds the first conversation of `synced`
    first = held.items.get().conversation
    picked = Conversation.objects.filter(pk__in=[first.pk, other.conversations.first().pk])
    request_id = freeze.conversations(synced.owner, picked, {})
    drafts = ErasureJob.objects.filter(request=request_id)
    assert drafts.count() == 2
    confirmed = lifecycle.confirm(drafts, dry_run=False, enqueue=False)
    assert [job.connection_id for job in confirmed] == [other.pk]
    assert list(ErasureJob.objects.filter(request=request_id)) == confirmed
