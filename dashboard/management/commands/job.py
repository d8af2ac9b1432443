"""manage.py job JOB_ID: a job's state and every item's outcome."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from .. import base


class Command(BaseCommand):
    help = "Show an erasure job's state and per-item outcomes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id")

    def handle(self, *args: Any, **opts: Any) -> None:
        job = base.job(opts["job_id"])
        kind = "dry run" if job.dry_run else "erase"
        self.stdout.write(f"job {job.pk} ({kind}) on connection {job.connection_id}: {job.status}")
        self.stdout.write(f"outcomes: {base.outcome_line(job)}")
        if job.last_error:
            self.stdout.write(f"note: {job.last_error}")
        for item in job.items.order_by("id"):
            detail = f"  {item.detail}" if item.detail else ""
            self.stdout.write(f"{item.kind}\t{item.provider_id}\t{item.state}{detail}")
