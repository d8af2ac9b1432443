"""Provider requests sent and 429s received, by provider and kind of work, for /metrics.

A counter table rather than sums over sync runs and jobs: those rows go when a connection is
removed, and a Prometheus counter must never go down. Added to by whoever spoke to the
provider (a sync's heartbeat, an erasure worker after each batch, a Test), read by every
web process alike."""

from __future__ import annotations

from django.db import IntegrityError, models, transaction
from django.db.models import F

from providers.meter import Counts


class ProviderTraffic(models.Model):
    class Kind(models.TextChoices):
        SYNC = "sync", "Sync"
        ERASE = "erase", "Erasure"
        CHECK = "check", "Key check"

    provider = models.CharField(max_length=40)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    requests = models.BigIntegerField(default=0)
    rate_limited = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "kind"],
                                               name="one_traffic_row_per_provider_kind")]

    def __str__(self) -> str:
        return f"{self.provider} {self.kind}: {self.requests} requests, {self.rate_limited} 429s"

    @classmethod
    def add(cls, provider: str, kind: str, counts: Counts) -> None:
        """Add ``counts`` in one UPDATE (the row is made the first time)."""
        if not counts:
            return
        rows = cls.objects.filter(provider=provider, kind=kind)
        change = {"requests": F("requests") + counts.requests,
                  "rate_limited": F("rate_limited") + counts.rate_limited}
        if rows.update(**change):
            return
        try:
            with transaction.atomic():
                cls.objects.create(provider=provider, kind=kind, requests=counts.requests,
                                   rate_limited=counts.rate_limited)
        except IntegrityError:  # another process made it first
            rows.update(**change)
