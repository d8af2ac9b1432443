"""How far a job has come: counts per outcome, what is settled, an estimate, and whether a
page showing it should keep polling. The job page and the request page both show it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from ..lib import labels
from ..models import ErasureItem, ErasureJob

State = ErasureItem.State


def progress(job: ErasureJob) -> dict[str, Any]:
    counts = job.counts()
    total = sum(counts.values())
    settled = total - sum(counts[s] for s in ErasureItem.OPEN)
    return {
        "job": job,
        "counts": [(labels.label(labels.ITEM_STATE, s), s, n) for s, n in counts.items() if n],
        "total": total,
        "settled": settled,
        "percent": int(settled * 100 / total) if total else 100,
        "eta": _eta(job, settled, total),
        "failed": sum(counts[s] for s in ErasureItem.FAILING),
        "would_erase": counts[State.WOULD_ERASE],
        "outcome": labels.outcomes(counts),
        # A finished job may still be reading back what it sent (a cancelled one, say).
        "polling": not job.finished or bool(counts[State.UNKNOWN] or counts[State.IN_FLIGHT]),
    }


def _eta(job: ErasureJob, settled: int, total: int) -> datetime | None:
    if job.status != ErasureJob.Status.RUNNING or not job.started_at or not settled:
        return None
    elapsed = (timezone.now() - job.started_at).total_seconds()
    return timezone.now() + timedelta(seconds=elapsed / settled * (total - settled))
