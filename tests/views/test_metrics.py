"""/metrics: off unless configured, then only with the token and from the allowed
addresses, and every figure is what the database holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from dashboard.models import ErasureJob
from tests.helpers import confirmed_job

TOKEN = "metrics-token-for-tests"  # noqa: S105 - test value


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.django_db
def test_metrics_are_off_unless_configured(client):
    assert client.get("/metrics").status_code == 404


@pytest.mark.django_db
def test_metrics_need_the_token_and_an_allowed_address(client, settings):
    settings.LETHE_METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    settings.LETHE_METRICS_ALLOW = ["10.0.0.0/8"]
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
                      REMOTE_ADDR="10.1.2.3").status_code == 200
    settings.LETHE_METRICS_TOKEN = ""  # addresses alone will do
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


@pytest.mark.django_db
def test_every_figure_is_what_the_database_holds(client, settings, synced):
    settings.LETHE_METRICS_TOKEN = TOKEN
    job = confirmed_job(synced, 3)
    ErasureJob.objects.filter(pk=job.pk).update(
        status=ErasureJob.Status.QUEUED, queued_at=timezone.now() - timedelta(minutes=5))
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    found = samples(text)
    assert found[("lethe_erasure_jobs", (("state", "queued"),))] == 1
    assert found[("lethe_erasure_jobs", (("state", "done"),))] == 0
    assert found[("lethe_erasure_items", (("outcome", "pending"), ("provider", "convai")))] == 3
    assert 299 <= found[("lethe_erasure_oldest_queued_seconds", ())] < 360
    assert found[("lethe_erasure_oldest_awaiting_approval_seconds", ())] == 0
    assert found[("lethe_beat_last_sweep_age_seconds", ())] == -1  # no beat in this test
    runs = synced.sync_runs.get()
    assert found[("lethe_sync_duration_seconds_count", (("status", "ok"),))] == 1
    assert found[("lethe_sync_duration_seconds_sum", (("status", "ok"),))] == pytest.approx(
        (runs.finished_at - runs.started_at).total_seconds())
    assert TOKEN not in text and synced.label not in text


@pytest.mark.django_db
def test_the_example_alert_rules_use_only_metrics_that_exist(client, settings):
    import re

    import yaml

    from tests.helpers import ROOT

    settings.LETHE_METRICS_TOKEN = TOKEN
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    names = {f"{family.name}{suffix}" for family in text_string_to_metric_families(text)
             for suffix in ("", "_count", "_sum", "_total")}  # every family, even empty
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "lethe-alerts.yml").read_text())
    used = {m for group in rules["groups"] for rule in group["rules"]
            for m in re.findall(r"lethe_\w+", rule["expr"])}
    assert used and used <= names, used - names


@pytest.mark.django_db
def test_provider_requests_and_429s_are_what_the_provider_counted(client, settings, connection,
                                                                   convai_fake):
    """Every request the fake received and every 429 it answered is in /metrics, under the
    provider and the kind of work that sent it, and a scrape later still holds them."""
    from dashboard.erasure import worker
    from dashboard.mirror import sync
    from dashboard.models import ProviderTraffic

    # A sync's heartbeat adds its counts on a connection of its own, committed whatever the
    # test's transaction does: an earlier test's sync in this process may have left some.
    ProviderTraffic.objects.all().delete()
    settings.LETHE_METRICS_TOKEN = TOKEN
    convai_fake.retry_after = 0.01
    convai_fake.fail_next(2, status=429)  # the sync's first reads are refused, then retried
    run = sync.perform_sync(sync.start(connection).pk)
    assert run.status == "ok", run.error
    synced_requests = sum(convai_fake.requests.values())
    assert (run.requests, run.rate_limited) == (synced_requests, 2)

    convai_fake.clear_faults()
    convai_fake.retry_after = 0.01
    convai_fake.fail_next(1, status=429)
    job = worker.work_job(confirmed_job(connection, 3).pk)
    assert job.status == ErasureJob.Status.DONE
    erase_requests = sum(convai_fake.requests.values())

    convai_fake.clear_faults()
    client.force_login(connection.owner)
    client.post(reverse("connection_test", args=[connection.pk]))
    check_requests = sum(convai_fake.requests.values())

    found = samples(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
                               ).content.decode())
    for kind, requests, limited in (("sync", synced_requests, 2), ("erase", erase_requests, 1),
                                    ("check", check_requests, 0)):
        labels = (("kind", kind), ("provider", "convai"))
        assert found[("lethe_provider_requests_total", labels)] == requests, kind
        assert found[("lethe_provider_rate_limited_total", labels)] == limited, kind
    assert erase_requests and check_requests
