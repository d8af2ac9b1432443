"""manage.py demo: the demo login and one connection per running fake (used by `make run`).

Safe to run again: it keeps existing data and only fills in what is missing.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from providers.fakes.convai import DEMO_KEY

from ...models import Connection

DEMO_USER = "demo"
DEMO_PASSWORD = "lethe-demo"  # noqa: S105 - the documented demo login, local only


class Command(BaseCommand):
    help = "Create the demo login and a connection to the local Convai fake."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--convai-url", default="http://127.0.0.1:8101")

    def handle(self, *args: Any, **opts: Any) -> None:
        User = get_user_model()
        user, created = User.objects.get_or_create(username=DEMO_USER)
        if created:
            user.set_password(DEMO_PASSWORD)
            user.is_staff = user.is_superuser = True
            user.save()
        connection = Connection.objects.filter(owner=user, provider="convai").first()
        if connection is None:
            connection = Connection(owner=user, provider="convai", label="Demo Convai")
            connection.set_secrets({"api_key": DEMO_KEY})
        connection.options = {**connection.options, "base_url": opts["convai_url"]}
        connection.save()
        self.stdout.write(f"demo login: {DEMO_USER} / {DEMO_PASSWORD}")
