"""manage.py seed_mirror CONNECTION_ID --conversations N --messages M: a large mirror, fast.

For benchmarks and load tests only: generates N conversations of M messages each straight
into the database (PostgreSQL, with generate_series), as if a sync had mirrored them. The
text is drawn from a small vocabulary, a few words rarer than the rest, so searches have
both common and selective terms. The full-text index is dropped while loading and built
again afterwards, which is several times faster than maintaining it row by row.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection as db
from django.db import transaction

from ...models import Character
from .. import base

WORDS = (
    "the a and you I it is to of in that what about mountains river castle dragon coffee "
    "tea morning evening rain storm journey friend secret letter garden winter summer "
    "library music story dream ocean forest city night light shadow stone fire silver "
    "gold road window door quiet tired happy strange wonderful maybe really never always"
).split()
RARE = ("zeppelin", "quasar", "marmalade", "obsidian")


class Command(BaseCommand):
    help = "Generate a large mirror for one connection (benchmarks; PostgreSQL only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("connection_id")
        parser.add_argument("--conversations", type=int, default=20_000)
        parser.add_argument("--messages", type=int, default=50)
        parser.add_argument("--characters", type=int, default=50)

    def handle(self, *args: Any, **opts: Any) -> None:
        if db.vendor != "postgresql":
            raise CommandError("seed_mirror needs PostgreSQL.")
        connection = base.connection(opts["connection_id"])
        n_conv, n_msg = opts["conversations"], opts["messages"]
        words = "ARRAY[" + ", ".join(f"'{w}'" for w in WORDS) + "]::text[]"
        rare = "ARRAY[" + ", ".join(f"'{w}'" for w in RARE) + "]::text[]"
        # Word k of message g: a hash of (g, k) picks it; one message in ~500 holds a rare one.
        pick = " || ' ' || ".join(
            f"(({words})[1 + abs(hashint8(g * 16 + {k})) %% {len(WORDS)}])" for k in range(10))
        text = (f"{pick} || CASE WHEN abs(hashint8(g * 7 + 3)) %% 500 = 0 THEN ' ' || "
                f"({rare})[1 + abs(hashint8(g)) %% {len(RARE)}] ELSE '' END")
        with transaction.atomic(), db.cursor() as cursor:
            Character.objects.bulk_create([
                Character(connection=connection, provider_id=f"seed-char-{i}",
                          name=f"Seeded character {i}") for i in range(opts["characters"])
            ], ignore_conflicts=True)
            cursor.execute("DROP INDEX IF EXISTS message_text_fts")
            cursor.execute(
                "INSERT INTO dashboard_conversation (connection_id, character_id, provider_id, "
                "title, started_at, last_message_at, message_count, provider_state, "
                "mirror_state, flags, protected, synced_at) "
                "SELECT %s, (SELECT id FROM dashboard_character WHERE connection_id = %s "
                "  AND provider_id = 'seed-char-' || (c %% %s)), "
                "'seed-' || c, 'Seeded conversation ' || c, "
                "now() - make_interval(secs => c * 600 + 3600), "
                "now() - make_interval(secs => c * 600), %s, 'active', 'present', '{}', "
                "c %% 997 = 0, now() "
                "FROM generate_series(1, %s) AS c "
                "ON CONFLICT (connection_id, provider_id) DO NOTHING",
                [connection.pk, connection.pk, opts["characters"], n_msg, n_conv])
            # The text expression is built from the constants above, never from input.
            cursor.execute(
                "INSERT INTO dashboard_message (conversation_id, provider_id, position, "  # noqa: S608  # nosec B608
                "author, "
                "is_human, text, created_at, pinned, mirror_state) "
                f"SELECT v.id, 'm' || g, p, CASE WHEN p %% 2 = 1 THEN 'You' ELSE 'Character' END, "
                f"p %% 2 = 1, {text}, v.started_at + make_interval(secs => p * 60), "
                "g %% 1009 = 0, 'present' "
                "FROM dashboard_conversation v CROSS JOIN generate_series(0, %s - 1) AS p "
                "CROSS JOIN LATERAL (SELECT v.id * 100000 + p AS g) AS gg "
                "WHERE v.connection_id = %s AND v.provider_id LIKE 'seed-%%' "
                "ON CONFLICT (conversation_id, provider_id) DO NOTHING",
                [n_msg, connection.pk])
        with db.cursor() as cursor:
            # After the commit: PostgreSQL will not build an index under pending FK checks.
            cursor.execute(
                "CREATE INDEX IF NOT EXISTS message_text_fts ON dashboard_message "
                "USING gin (to_tsvector('simple'::regconfig, COALESCE(text, ''::text)))")
            cursor.execute("ANALYZE dashboard_conversation")
            cursor.execute("ANALYZE dashboard_message")
        self.stdout.write(f"seeded {n_conv} conversations of {n_msg} messages")
