"""manage.py demo: the demo logins and one connection per fake provider (used by `make run`).

Two people, so the whole path of a large erasure can be tried: `demo` (an admin, who owns
the connections) and `approver` (the approver role), both in a team the connections are
shared with.

Safe to run again: it keeps existing data and only fills in what is missing. The fakes are
expected on consecutive loopback ports from --fake-port, in the order of `demo_ports()`.
A connection never synced gets a sync queued, so the first start arrives to a mirror (the
worker `make run` starts takes it, and the overview shows its progress).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser

import providers
from providers.fakes import FAKES, demo_ports
from providers.fakes.planted import CUSTOM_PATTERN

from ...mirror import sync
from ...models import Connection, FindingPattern

DEMO_USER = "demo"
APPROVER = "approver"
DEMO_PASSWORD = "lethe-demo"  # noqa: S105 - the documented local demo login  # nosec B105
TEAM = "demo-team"


class Command(BaseCommand):
    help = "Create the demo login and a connection to each local provider fake."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fake-port", type=int, default=8101,
                            help="port of the first fake (the others follow)")
        parser.add_argument("--no-sync", action="store_true",
                            help="do not queue the first sync of new demo connections")

    def handle(self, *args: Any, **opts: Any) -> None:
        User = get_user_model()
        user, created = User.objects.get_or_create(username=DEMO_USER)
        if created:
            user.set_password(DEMO_PASSWORD)
            user.is_staff = user.is_superuser = True
            user.save()
        approver, created = User.objects.get_or_create(username=APPROVER)
        if created:
            approver.set_password(DEMO_PASSWORD)
            approver.save()
        team = Group.objects.get_or_create(name=TEAM)[0]
        approvers = Group.objects.get_or_create(name=settings.LETHE_ROLE_GROUPS["approver"])[0]
        user.groups.add(team)
        approver.groups.add(team, approvers)
        # The fakes plant an employee id among other things; this is the pattern finding it.
        FindingPattern.objects.get_or_create(name=CUSTOM_PATTERN[0],
                                             defaults={"pattern": CUSTOM_PATTERN[1]})
        for name, port in demo_ports(opts["fake_port"]).items():
            secrets, options = FAKES[name].sized(conversations=0, messages=0).client_config(
                f"http://127.0.0.1:{port}"
            )
            connection = Connection.objects.filter(owner=user, provider=name).first()
            if connection is None:
                connection = Connection(owner=user, provider=name,
                                        label=f"Demo {providers.get(name).label}")
                connection.set_secrets(secrets)
            # The ports may change between runs; the data and the key stay.
            connection.options = {**connection.options, **options}
            connection.save()
            connection.shared_with.add(team)
            if not opts["no_sync"] and not connection.sync_runs.exists():
                sync.start(connection, user, send=True)
        self.stdout.write(f"demo logins: {DEMO_USER} / {DEMO_PASSWORD} (admin), "
                          f"{APPROVER} / {DEMO_PASSWORD} (approver)")
