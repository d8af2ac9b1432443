"""A running sync's progress, written with each heartbeat.

The sync writes the mirror in one transaction, so nothing it writes is visible before the
end; the heartbeat thread has its own database connection and commits at once. With each
beat it writes what the reader has done so far (characters, conversations listed and read,
messages), the requests sent, the 429s received and the rate over the last beat, and adds
the new requests to the provider traffic counted for /metrics.

On SQLite (the demo) the sync holds the only write lock, so the beats wait and the counts
appear when the run ends; PostgreSQL shows them as they grow."""

from __future__ import annotations

import logging
import time

from django.db import DatabaseError
from django.utils import timezone

from providers.meter import Meter

from ..models import ProviderTraffic, SyncRun
from .reader import Progress

log = logging.getLogger(__name__)


class Tracker:
    def __init__(self, run_id: int, provider: str) -> None:
        self.run_id = run_id
        self.provider = provider
        self.progress = Progress()
        self.meter: Meter | None = None  # set once the provider client is open
        self._last = (time.monotonic(), 0)

    def beat(self) -> None:
        fields: dict[str, object] = {"heartbeat_at": timezone.now()}
        p = self.progress
        fields.update(characters=p.characters, conversations=p.conversations,
                      to_read=p.to_read, read=p.read, messages=p.messages)
        if self.meter is not None:
            counts = self.meter.total()
            now = time.monotonic()
            then, before = self._last
            self._last = (now, counts.requests)
            fields.update(requests=counts.requests, rate_limited=counts.rate_limited,
                          rate=round((counts.requests - before) / max(now - then, 1e-3), 2))
            ProviderTraffic.add(self.provider, ProviderTraffic.Kind.SYNC, self.meter.take())
        SyncRun.objects.filter(pk=self.run_id, status=SyncRun.Status.RUNNING).update(**fields)

    def finish(self, run: SyncRun) -> None:
        """After the run ended (either way): its request counts, and the traffic the last
        beat did not add yet."""
        if self.meter is None:
            return
        counts = self.meter.total()
        run.requests, run.rate_limited, run.rate = counts.requests, counts.rate_limited, 0.0
        try:
            SyncRun.objects.filter(pk=run.pk).update(requests=run.requests,
                                                     rate_limited=run.rate_limited, rate=0.0)
            ProviderTraffic.add(self.provider, ProviderTraffic.Kind.SYNC, self.meter.take())
        except DatabaseError:
            # The database went away mid-sync: the task is retried, and what it raised
            # (not this) is what matters.
            log.warning("could not record the request counts of sync %s", run.pk)
