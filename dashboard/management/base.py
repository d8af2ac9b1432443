"""What the automation commands share: looking things up with clear errors."""

from __future__ import annotations

from django.core.management.base import CommandError

from ..models import Connection, ErasureJob


def connection(pk: str) -> Connection:
    try:
        return Connection.objects.get(pk=int(pk))
    except (ValueError, Connection.DoesNotExist):
        raise CommandError(f"No connection with id {pk!r}.") from None


def job(pk: str) -> ErasureJob:
    try:
        return ErasureJob.objects.select_related("connection").get(pk=int(pk))
    except (ValueError, ErasureJob.DoesNotExist):
        raise CommandError(f"No erasure job with id {pk!r}.") from None


def outcome_line(job: ErasureJob) -> str:
    counts = {state: n for state, n in job.counts().items() if n}
    return ", ".join(f"{state}={n}" for state, n in counts.items()) or "no items"
