"""A planted secret never leaves encrypted storage except inside the provider call: not in
logs, task messages, pages, the admin, audit events, receipts or error reports, even when
syncs and jobs fail (invariant 6 in docs/architecture.md)."""

from __future__ import annotations

import contextlib
import json
import logging
import sys

import pytest
from celery.signals import before_task_publish
from django.urls import reverse
from django.views.debug import ExceptionReporter

import providers
from dashboard.erasure import lifecycle, worker
from dashboard.lib.aio import ProviderSession
from dashboard.mirror import sync
from dashboard.models import AuditEvent, Connection, ErasureJob
from providers.fakes.convai import ConvaiFake
from tests.helpers import shown

pytestmark = pytest.mark.django_db
CANARY = "CANARY-a1b2c3d4e5f6-do-not-leak-9f8e7d6c"


@pytest.fixture
def convai_fake() -> ConvaiFake:
    return ConvaiFake(seed=3, characters=2, sessions=4, api_keys=[CANARY])


@pytest.fixture
def published():  # type: ignore[no-untyped-def]
    messages: list[str] = []

    def capture(body=None, headers=None, **kwargs):  # type: ignore[no-untyped-def]
        messages.append(json.dumps([body, headers], default=str))

    before_task_publish.connect(capture, weak=False)
    yield messages
    before_task_publish.disconnect(capture)


def test_the_canary_key_never_leaks_whatever_fails(client, owner, convai_server, convai_fake,
                                                   published, caplog, admin_user,
                                                   django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    client.force_login(owner)
    client.post(reverse("connection_add"), {"provider": "convai", "label": "Canary",
                                            "secret_api_key": CANARY,
                                            "option_base_url": convai_server.url})
    connection = Connection.objects.get(label="Canary")
    assert CANARY not in connection.secrets_encrypted
    pages: list[str] = []

    # A sync that works, through the queue (task message) and in-process.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("connection_sync", args=[connection.pk]))
    run = sync.perform_sync(connection.sync_runs.get().pk)
    assert run.status == "ok"
    # Jobs that fail in every way the provider can fail.
    ids = list(connection.conversations.values_list("pk", flat=True))
    preview = client.post(reverse("erase_selected"), {"conversation": ids[:2]})
    pages.append(client.get(preview["Location"]).content.decode())
    with django_capture_on_commit_callbacks(execute=True):
        client.post(preview["Location"], {"mode": "erase", **shown(2)})
    job = ErasureJob.objects.get()
    convai_fake.plan_gated_delete = True
    worker.work_job(job.pk)
    convai_fake.plan_gated_delete = False
    convai_fake.malformed_next(5)
    with contextlib.suppress(lifecycle.NotAllowed):  # nothing left failing to retry
        lifecycle.retry_failed(job, owner)
    worker.work_job(job.pk)
    convai_fake.api_keys = frozenset()  # the provider now refuses the key
    with contextlib.suppress(lifecycle.NotAllowed):
        lifecycle.retry_failed(job, owner)
    worker.work_job(job.pk)
    failed_run = sync.perform_sync(sync.start(connection).pk)
    assert failed_run.status == "failed"
    # Every page the owner and an admin can open.
    for url in [reverse("connections"), reverse("connection", args=[connection.pk]),
                reverse("connection_edit", args=[connection.pk]), reverse("conversations"),
                reverse("jobs"), reverse("job", args=[job.pk]),
                reverse("job_receipt", args=[job.pk]), reverse("job_receipt_json", args=[job.pk])]:
        pages.append(client.get(url).content.decode())
    client.force_login(admin_user)
    for url in [reverse("admin:dashboard_connection_changelist"),
                reverse("admin:dashboard_connection_change", args=[connection.pk]),
                reverse("admin:dashboard_erasurejob_change", args=[job.pk]),
                reverse("admin:dashboard_syncrun_changelist"),
                reverse("admin:dashboard_auditevent_changelist"), reverse("audit"),
                reverse("audit_csv")]:
        response = client.get(url)
        pages.append(b"".join(response.streaming_content).decode() if response.streaming
                     else response.content.decode())
    # The error report (with every frame's local variables) of a failure deep inside a
    # provider call made with the key.
    convai_fake.api_keys = frozenset([CANARY])
    convai_fake.malformed_next(5)
    try:
        with ProviderSession(connection.open_provider()) as session:
            session.call(session.provider.check())
    except providers.ProtocolError:
        reporter = ExceptionReporter(None, *sys.exc_info())
        report = reporter.get_traceback_text() + reporter.get_traceback_html()
    assert "ProtocolError" in report and "Local vars" in report

    places = {
        "logs": caplog.text,
        "task messages": "\n".join(published),
        "pages": "\n".join(pages),
        "audit": json.dumps(list(AuditEvent.objects.values()), default=str),
        "sync runs": json.dumps(list(connection.sync_runs.values()), default=str),
        "job": json.dumps(list(job.items.values()), default=str) + job.last_error,
        "connection": connection.last_error + connection.secret_hint,
        "error report": report,
    }
    assert published, "no task message was captured"
    for place, text in places.items():
        assert CANARY not in text, place
        assert CANARY[:20] not in text, place
