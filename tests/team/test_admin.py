"""The Django admin cannot rewrite history: what receipts and the trail stand on is
read-only there, mirrored text is not editable, and every change made there is audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from dashboard.erasure import worker
from dashboard.models import AuditEvent, Connection, ErasureJob
from tests.helpers import confirmed_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):  # type: ignore[no-untyped-def]
    boss = django_user_model.objects.create_superuser("boss", password="x-boss-123")
    client.force_login(boss)
    return client


def test_jobs_items_and_audit_events_cannot_be_changed_in_the_admin(admin_client, synced):
    job = worker.work_job(confirmed_job(synced, 1).pk)
    item = job.items.get()
    for name, obj in [("erasurejob", job), ("erasureitem", item)]:
        url = reverse(f"admin:dashboard_{name}_change", args=[obj.pk])
        assert admin_client.get(url).status_code == 200  # seen, read-only
        assert admin_client.post(url, {"status": "queued", "state": "pending"}
                                 ).status_code == 403
        assert admin_client.post(reverse(f"admin:dashboard_{name}_delete", args=[obj.pk]),
                                 {"post": "yes"}).status_code == 403
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.DONE and job.items.get().state == item.state
    event = AuditEvent.objects.first()
    assert admin_client.post(reverse("admin:dashboard_auditevent_change", args=[event.pk]),
                             {}).status_code == 403


def test_mirrored_text_cannot_be_edited_in_the_admin(admin_client, synced):
    message = synced.conversations.first().messages.first()
    url = reverse("admin:dashboard_message_change", args=[message.pk])
    assert admin_client.post(url, {"text": "rewritten"}).status_code == 403
    message.refresh_from_db()
    assert message.text != "rewritten"
    conv = message.conversation
    page = admin_client.get(reverse("admin:dashboard_conversation_change", args=[conv.pk]))
    assert b'name="title"' not in page.content and b'name="protected"' in page.content


def test_every_change_made_in_the_admin_is_audited(admin_client, synced, django_user_model):
    newcomer = django_user_model.objects.create_user("newcomer", password="x-new-123")
    url = reverse("admin:dashboard_connection_change", args=[synced.pk])
    admin_client.post(url, {"owner": newcomer.pk, "label": "Handed over", "options": "{}",
                            "status": "ok", "last_error": "", "shared_with": []})
    assert Connection.objects.get(pk=synced.pk).owner == newcomer
    admin_client.post(reverse("admin:auth_group_add"), {"name": "lethe-admins"})
    group = Group.objects.get(name="lethe-admins")
    admin_client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    events = list(AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_CHANGE)
                  .order_by("id").values_list("object_type", "details"))
    assert [(kind, details["change"]) for kind, details in events] == [
        ("connection", "changed"), ("group", "added"), ("group", "deleted")]
    assert "Owner" in str(events[0][1]["fields"]) and "Handed over" not in str(events[0][1])
