"""`manage.py ready`: exit 0 when the database, the broker and beat are all well, else 1
with what is not (for systemd's ExecStartPost, a cron check or a container probe)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from dashboard.erasure import readiness


class Command(BaseCommand):
    help = "Check that the database, the broker and beat are working."

    def handle(self, *args: Any, **options: Any) -> None:
        found = readiness.check()
        for part, state in found.items():
            self.stdout.write(f"{part}: {state}")
        if not readiness.ready(found):
            raise CommandError("not ready")
