"""The team: SSO through a trusted proxy, local sign-in throttling, roles, sharing, the
audit trail, key rotation, and the worker re-checking access before it decrypts."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from dashboard.erasure import freeze, lifecycle, worker
from dashboard.models import AuditEvent, Connection, ErasureJob, SyncRun
from dashboard.models.audit import AppendOnly
from tests.helpers import PASSWORD, ROOT, via_proxy, with_role

pytestmark = pytest.mark.django_db


def test_a_forged_header_sent_straight_to_the_app_gets_no_access(sso):
    forged = {**via_proxy(), "REMOTE_ADDR": "203.0.113.9"}
    response = sso.get(reverse("connections"), **forged)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not AuditEvent.objects.filter(action="sign_in").exists()
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="alice").exists()


def test_the_header_from_the_proxy_signs_in_creates_the_user_and_maps_groups(sso):
    response = sso.get(reverse("connections"), **via_proxy())
    assert response.status_code == 200
    from django.contrib.auth import get_user_model

    alice = get_user_model().objects.get(username="alice")
    assert alice.email == "alice@example.com"
    assert set(alice.groups.values_list("name", flat=True)) == {"lethe-operators", "support"}
    assert "alice · operator" in response.content.decode()
    assert AuditEvent.objects.filter(action="sign_in", actor=alice).count() == 1


def test_a_session_whose_header_disappears_is_logged_out(sso):
    assert sso.get(reverse("connections"), **via_proxy()).status_code == 200
    response = sso.get(reverse("connections"), REMOTE_ADDR="10.0.0.1")
    assert response.status_code == 302


def test_local_sign_in_is_off_when_sso_is_configured(sso, owner):
    response = sso.post(reverse("login"), {"username": "owner", "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in sso.session


def test_local_sign_in_is_throttled_after_repeated_failures(client, owner, settings):
    settings.LETHE_LOGIN_MAX_FAILURES = 3
    for _ in range(3):
        client.post(reverse("login"), {"username": "owner", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "owner", "password": PASSWORD})
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="sign_in_failed").count() >= 3
    assert all(PASSWORD not in str(e.details) for e in AuditEvent.objects.all())


def test_a_viewer_browses_but_cannot_sync_or_erase(client, synced, django_user_model):
    viewer = with_role(django_user_model.objects.create_user("vic", password=PASSWORD),
                       "viewer")
    team = Group.objects.create(name="support")
    viewer.groups.add(team)
    synced.shared_with.add(team)
    client.force_login(viewer)
    assert client.get(reverse("connection", args=[synced.pk])).status_code == 200
    assert client.get(reverse("conversations")).context["page"].rows
    response = client.post(reverse("connection_sync", args=[synced.pk]))
    assert response.status_code == 403 and "needs the operator role" in response.content.decode()
    ids = list(synced.conversations.values_list("pk", flat=True)[:2])
    assert client.post(reverse("erase_selected"), {"conversation": ids}).status_code == 403
    assert SyncRun.objects.filter(connection=synced).count() == 1
    assert not ErasureJob.objects.exists()


def test_sharing_with_a_group_lets_its_members_see_and_only_its_members(client, synced,
                                                                        django_user_model):
    team = Group.objects.create(name="support")
    synced.owner.groups.add(team)
    member = with_role(django_user_model.objects.create_user("mia", password=PASSWORD),
                       "operator")
    member.groups.add(team)
    client.force_login(member)
    url = reverse("connection", args=[synced.pk])
    assert client.get(url).status_code == 404
    owner_client = Client()
    owner_client.force_login(synced.owner)
    owner_client.post(reverse("connection_share", args=[synced.pk]), {"groups": [team.pk]})
    assert client.get(url).status_code == 200
    # A member may sync, but only the owner changes the connection or its key.
    assert client.post(reverse("connection_sync", args=[synced.pk])).status_code == 302
    assert client.get(reverse("connection_edit", args=[synced.pk])).status_code == 404
    event = AuditEvent.objects.get(action="connection_shared")
    assert event.details == {"groups": ["support"]} and event.actor == synced.owner
    # Sharing only with one's own groups.
    other = Group.objects.create(name="strangers")
    owner_client.post(reverse("connection_share", args=[synced.pk]), {"groups": [other.pk]})
    assert list(synced.shared_with.all()) == [team]


def test_approvers_approve_others_jobs_not_their_own(client, synced, django_user_model,
                                                     settings):
    settings.LETHE_APPROVAL_ALL = True
    approver = with_role(django_user_model.objects.create_user("ann", password=PASSWORD),
                         "approver")
    team = Group.objects.create(name="support")
    approver.groups.add(team)
    synced.shared_with.add(team)
    ids = synced.conversations.order_by("id")[:1]
    request = freeze.conversations(synced.owner, synced.conversations.filter(pk__in=ids), {})
    [job] = lifecycle.confirm(ErasureJob.objects.filter(request=request), dry_run=False,
                            enqueue=False)
    client.force_login(synced.owner)
    response = client.post(reverse("job_action", args=[job.pk, "approve"]))
    assert response.status_code == 403
    client.force_login(approver)
    client.post(reverse("job_action", args=[job.pk, "approve"]))
    job.refresh_from_db()
    assert job.approved_by == approver
    assert AuditEvent.objects.filter(action="erasure_approved", actor=approver).exists()


def test_the_worker_rechecks_the_requesters_access_before_decrypting(synced, convai_fake):
    ids = synced.conversations.order_by("id")[:1]
    request = freeze.conversations(synced.owner, synced.conversations.filter(pk__in=ids), {})
    [job] = lifecycle.confirm(ErasureJob.objects.filter(request=request), dry_run=False,
                            enqueue=False)
    synced.owner.groups.clear()  # no longer an operator
    job = worker.work_job(job.pk)
    assert job.status == ErasureJob.Status.PAUSED
    assert "no longer has access" in job.last_error
    assert not convai_fake.deletes


def test_audit_events_are_append_only_and_listed_for_approvers(client, synced,
                                                               django_user_model):
    event = AuditEvent.objects.create(actor_name="x", action="sync_requested")
    event.details = {"changed": True}
    with pytest.raises(AppendOnly):
        event.save()
    with pytest.raises(AppendOnly):
        event.delete()
    client.force_login(synced.owner)
    assert client.get(reverse("audit")).status_code == 403  # an operator
    boss = with_role(django_user_model.objects.create_user("bo", password=PASSWORD), "admin")
    client.force_login(boss)
    page = client.get(reverse("audit"), {"action": "sync_requested"})
    assert page.status_code == 200 and "Sync requested" in page.content.decode()
    body = b"".join(client.get(reverse("audit_csv")).streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:3] == ["at", "who", "action"] and len(rows) >= 2
    # The stored action stays for scripts; its label sits beside it for people.
    sync = next(row for row in rows if row[2] == "sync_requested")
    assert rows[0][-1] == "action_label" and sync[-1] == "Sync requested"


def test_every_audited_action_leaves_an_event_without_secrets(client, owner, convai_server):
    key = "demo-convai-key-0000000000000000"
    client.force_login(owner)
    client.post(reverse("connection_add"), {"provider": "convai", "label": "Audited",
                                            "secret_api_key": key,
                                            "option_base_url": convai_server.url})
    connection = Connection.objects.get(label="Audited")
    client.post(reverse("connection_edit", args=[connection.pk]), {
        "label": "Audited", "secret_api_key": key, "option_base_url": convai_server.url})
    client.post(reverse("connection_sync", args=[connection.pk]))
    client.post(reverse("connection_remove", args=[connection.pk]))
    actions = list(AuditEvent.objects.exclude(action="sign_in").order_by("id")
                   .values_list("action", flat=True))
    assert actions == ["connection_added", "connection_key_replaced", "sync_requested",
                       "connection_removed"]
    for event in AuditEvent.objects.all():
        assert key not in str(event.details) + event.object_label


def test_rotate_keys_reencrypts_under_the_newest_key(synced, settings):
    secrets = synced.get_secrets()
    new = Fernet.generate_key().decode()
    settings.LETHE_ENCRYPTION_KEYS = [new, *settings.LETHE_ENCRYPTION_KEYS]
    out = io.StringIO()
    call_command("rotate_keys", stdout=out)
    assert "1 connection" in out.getvalue()
    settings.LETHE_ENCRYPTION_KEYS = [new]  # the old key can now be dropped
    synced.refresh_from_db()
    assert synced.get_secrets() == secrets


def test_the_app_refuses_to_start_in_production_without_keys():
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")}
    env.update({"LETHE_SECRET_KEY": "x" * 50, "DJANGO_SETTINGS_MODULE": "dashboard.settings"})
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "LETHE_ENCRYPTION_KEYS" in result.stderr


def test_check_deploy_is_clean_with_production_settings():
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")}
    env.update({
        "LETHE_SECRET_KEY": Fernet.generate_key().decode() * 2,
        "LETHE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "LETHE_ALLOWED_HOSTS": "lethe.example.com",
        "DATABASE_URL": "sqlite:///:memory:",
    })
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy",
                             "--fail-level", "WARNING"], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_audit_page_links_what_an_event_names_only_for_those_who_may_open_it(
        client, synced, django_user_model):
    from tests.helpers import share

    client.force_login(synced.owner)
    client.post(reverse("connection_test", args=[synced.pk]))  # any audited step will do
    client.post(reverse("connection_sync", args=[synced.pk]))
    insider = with_role(django_user_model.objects.create_user("insider", password=PASSWORD),
                        "approver")
    outsider = with_role(django_user_model.objects.create_user("other", password=PASSWORD),
                         "approver")
    share(synced, insider)
    link = f'href="{reverse("connection", args=[synced.pk])}"'
    client.force_login(insider)
    assert link in client.get(reverse("audit")).content.decode()
    client.force_login(outsider)
    page = client.get(reverse("audit")).content.decode()
    assert link not in page and synced.label in page
