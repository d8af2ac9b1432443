"""What an operator watches Lethe by, for Prometheus: read from the database at each scrape,
so every web process answers the same and nothing is lost when a worker restarts.

Gauges of what is there now (jobs by state, items by outcome and provider, how long the
oldest job has waited for a worker and for an approver, when beat last swept) and summaries
of what was done (sync runs and their durations, provider requests sent and 429s received,
by provider and kind of work). No label holds a name a person typed, a
key or text."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Sum
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from ..models import ErasureItem, ErasureJob, ProviderTraffic, SyncRun, Tick


class LetheCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("lethe_erasure_jobs", "Erasure jobs by state.",
                                 labels=["state"])
        found = dict(ErasureJob.objects.values_list("status").annotate(n=Count("id")))
        for state in ErasureJob.Status:
            jobs.add_metric([str(state)], found.get(state, 0))
        yield jobs

        items = GaugeMetricFamily("lethe_erasure_items",
                                  "Erasure items by outcome and provider.",
                                  labels=["outcome", "provider"])
        for state, provider, n in (ErasureItem.objects.values_list("state", "job__provider")
                                   .annotate(n=Count("id")).order_by()):
            items.add_metric([state, provider or "unknown"], n)
        yield items

        now = timezone.now()
        for name, help_text, status, since in (
            ("lethe_erasure_oldest_awaiting_approval_seconds",
             "How long the oldest job waiting for an approver has waited (0: none).",
             ErasureJob.Status.AWAITING_APPROVAL, "confirmed_at"),
            ("lethe_erasure_oldest_queued_seconds",
             "How long the oldest job waiting for a worker has waited (0: none).",
             ErasureJob.Status.QUEUED, "queued_at"),
        ):
            oldest = ErasureJob.objects.filter(status=status).aggregate(at=Min(since))["at"]
            yield GaugeMetricFamily(name, help_text,
                                    value=(now - oldest).total_seconds() if oldest else 0.0)

        last_sweep = Tick.objects.filter(name="sweep").values_list("last_at", flat=True).first()
        yield GaugeMetricFamily(
            "lethe_beat_last_sweep_age_seconds",
            "Seconds since beat last swept the erasure jobs (-1: never).",
            value=(now - last_sweep).total_seconds() if last_sweep else -1.0)

        runs = SummaryMetricFamily("lethe_sync_duration_seconds",
                                   "Finished syncs and the time they took, by outcome.",
                                   labels=["status"])
        took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        for status, n, total in (SyncRun.objects.filter(finished_at__isnull=False,
                                                        started_at__isnull=False)
                                 .values_list("status").annotate(n=Count("id"), t=Sum(took))
                                 .order_by()):
            runs.add_metric([status], n, total.total_seconds() if total else 0.0)
        yield runs

        sent = CounterMetricFamily("lethe_provider_requests",
                                   "Requests sent to providers (retries included), by provider "
                                   "and kind of work (sync, erase, check).",
                                   labels=["provider", "kind"])
        limited = CounterMetricFamily("lethe_provider_rate_limited",
                                      "429 answers received from providers, by provider and "
                                      "kind of work.", labels=["provider", "kind"])
        for provider, kind, requests, rate_limited in ProviderTraffic.objects.values_list(
                "provider", "kind", "requests", "rate_limited").order_by("provider", "kind"):
            sent.add_metric([provider, kind], requests)
            limited.add_metric([provider, kind], rate_limited)
        yield sent
        yield limited
