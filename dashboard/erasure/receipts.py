"""A job's receipt: every item with its outcome, times and the provider's answer. Never a
secret, never message text; the export's hash proves what was saved before erasing.

The stored values and ISO times (UTC) are what programs read; beside each state goes its
label from ``lib.labels`` (``*_label``), for the person who opens the file."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..lib import labels
from ..models import ErasureJob


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _who(user: Any) -> str | None:
    return user.get_username() if user else None


def receipt(job: ErasureJob) -> dict[str, Any]:
    counts = {state: n for state, n in job.counts().items() if n}
    return {
        "receipt_version": 1,
        "job": job.pk,
        "request": str(job.request),
        "dry_run": job.dry_run,
        "status": job.status,
        "status_label": labels.label(labels.JOB_STATUS, job.status),
        "provider": job.provider,
        # As it was when the job was made: the connection may have been removed since.
        "connection": {"id": job.connection_id, "label": job.connection_label,
                       "key_hint": job.key_hint},
        "requested_by": _who(job.requested_by),
        "approved_by": _who(job.approved_by),
        "cancelled_by": _who(job.cancelled_by),
        "scope": job.scope,
        "times": {
            "created": _iso(job.created_at), "confirmed": _iso(job.confirmed_at),
            "approved": _iso(job.approved_at), "not_before": _iso(job.not_before),
            "started": _iso(job.started_at), "finished": _iso(job.finished_at),
        },
        "export": {"exported_at": _iso(job.exported_at), "sha256": job.export_sha256 or None},
        "counts": counts,
        "outcome": labels.outcomes(counts),
        "items": [
            {
                "kind": item.kind,
                "provider_id": item.provider_id,
                "conversation_provider_id": item.conversation_provider_id,
                "character_provider_id": item.character_provider_id,
                "idempotency_key": item.idempotency_key,
                "outcome": item.state,
                "outcome_label": labels.label(labels.ITEM_STATE, item.state),
                "attempts": item.attempts,
                "detail": item.detail,
                "provider_response": item.response,
                "settled_at": _iso(item.settled_at),
            }
            for item in job.items.order_by("id").iterator(chunk_size=2000)
        ],
    }


def combined_receipt(jobs: list[ErasureJob]) -> dict[str, Any]:
    parts = [receipt(job) for job in jobs]
    counts: dict[str, int] = {}
    for part in parts:
        for state, n in part["counts"].items():
            counts[state] = counts.get(state, 0) + n
    return {"receipt_version": 1, "request": str(jobs[0].request),
            "dry_run": all(p["dry_run"] for p in parts),
            "finished": all(job.finished for job in jobs),
            "connections": len(parts), "counts": counts,
            "outcome": labels.outcomes(counts), "jobs": parts}
