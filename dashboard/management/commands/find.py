"""manage.py find [--connection ID] [--batch N] [--after ID]: look for secrets and personal
data in the messages already mirrored (a sync does it for what it writes)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...mirror import findings
from .. import base


class Command(BaseCommand):
    help = ("Make the findings of every mirrored message anew, a batch at a time; stopped, "
            "it resumes with --after the last id it printed.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--connection", help="only this connection's messages")
        parser.add_argument("--batch", type=int, default=2000,
                            help="messages per transaction (default 2000)")
        parser.add_argument("--after", type=int, default=0,
                            help="start after this message id (to resume)")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["batch"] < 1:
            raise CommandError("--batch must be at least 1.")
        connection = base.connection(opts["connection"]) if opts["connection"] else None

        def report(scanned: int, written: int, last: int) -> None:
            self.stdout.write(f"{scanned} messages scanned, {written} findings, "
                              f"last id {last}")

        scanned, written, last = findings.rescan(
            batch=opts["batch"], after=opts["after"],
            connection_id=connection.pk if connection else None, report=report)
        if findings.scanner() is None:
            raise CommandError("Findings are off (LETHE_FINDINGS=0); nothing was scanned.")
        self.stdout.write(f"done: {scanned} messages scanned, {written} findings"
                          f" (last id {last})")
