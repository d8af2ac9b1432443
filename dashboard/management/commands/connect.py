"""manage.py connect PROVIDER --label L --owner USER [--option K=V ...] < secrets (K=V lines)"""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

import providers

from ...forms import connection_problems
from ...lib.aio import ProviderSession
from ...models import Connection


def parse_pairs(lines: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            # Never echo the line: it may be a secret.
            raise CommandError(f"Each {what} must be KEY=VALUE; got a line without '='.")
        pairs[key.strip()] = value.strip()
    return pairs


class Command(BaseCommand):
    help = "Add a provider connection; secrets are read as KEY=VALUE lines from standard input."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("provider", choices=sorted(providers.REGISTRY))
        parser.add_argument("--label", required=True)
        parser.add_argument("--owner", required=True, help="username of the owner")
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--no-check", action="store_true",
                            help="store the connection without testing the key first")

    def handle(self, *args: Any, **opts: Any) -> None:
        cls = providers.get(opts["provider"])
        try:
            owner = get_user_model().objects.get(username=opts["owner"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {opts['owner']!r}.") from None
        options = parse_pairs(opts["option"], "--option")
        secrets = parse_pairs(sys.stdin.read().splitlines() if not sys.stdin.isatty() else [],
                              "secret line")
        secret_names = {f.name for f in cls.fields if f.secret}
        option_names = {f.name for f in cls.fields if not f.secret}
        if unknown := set(secrets) - secret_names:
            raise CommandError(f"Unknown secret(s) for {cls.label}: {', '.join(sorted(unknown))}. "
                               f"Expected: {', '.join(sorted(secret_names))}.")
        if unknown := set(options) - option_names:
            raise CommandError(f"Unknown option(s) for {cls.label}: {', '.join(sorted(unknown))}. "
                               f"Expected: {', '.join(sorted(option_names))}.")
        if problems := connection_problems(cls, opts["label"], options):
            raise CommandError(" ".join(f"{name}: {text}" for name, text in problems.items())
                               + " Nothing was saved.")
        for spec in cls.fields:
            if spec.secret and spec.required and not secrets.get(spec.name):
                raise CommandError(f"Missing secret {spec.name} on standard input "
                                   f"(a line {spec.name}=...).")
            if not spec.secret and spec.default and spec.name not in options:
                options[spec.name] = spec.default
        connection = Connection(owner=owner, provider=cls.name, label=opts["label"].strip(),
                                options=options)
        connection.set_secrets(secrets)
        if not opts["no_check"]:
            try:
                with ProviderSession(connection.open_provider()) as session:
                    account = session.call(session.provider.check())
            except providers.AuthError as exc:
                raise CommandError(f"{cls.label} refused the key: {exc.sentence} Nothing was "
                                   "saved.") from None
            except providers.ProviderError as exc:
                raise CommandError(f"Could not reach {cls.label}: {exc.sentence} Nothing was saved "
                                   "(use --no-check to store it anyway).") from None
            connection.account_name = account.name[:200]
        connection.save()
        self.stdout.write(str(connection.pk))
