"""manage.py sync CONNECTION_ID [--full] [--queue]: mirror a connection, as "Sync now" does."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...mirror import sync
from ...models import SyncRun
from .. import base


class Command(BaseCommand):
    help = "Mirror one connection's histories (in this process unless --queue)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("connection_id")
        parser.add_argument("--queue", action="store_true", help="hand it to the workers")
        parser.add_argument("--full", action="store_true",
                            help="read every history whole, not only what is new")

    def handle(self, *args: Any, **opts: Any) -> None:
        connection = base.connection(opts["connection_id"])
        run = sync.start(connection, full=opts["full"], send=opts["queue"])
        if opts["queue"]:
            self.stdout.write(f"sync run {run.pk} queued")
            return
        run = sync.perform_sync(run.pk)
        if run.status != SyncRun.Status.OK:
            raise CommandError(f"Sync failed: {run.error}")
        self.stdout.write(
            f"sync run {run.pk}: {run.characters} characters, {run.conversations} conversations, "
            f"{run.messages} messages read, {run.gone} gone at provider "
            f"({'full' if run.full else 'incremental'})"
        )
