"""Bulk writes of the mirror: multi-row upserts everywhere, COPY on PostgreSQL.

The message columns are declared once, as the fields of ``MessageRow``; staging, COPY, the
upsert and the portable path all take them from there, so a column can never be written
into its neighbour's place.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection as db

from providers import records

from ..models import Character, Connection, Conversation, Message, MirrorState

PRESENT = MirrorState.PRESENT.value
ERASED = MirrorState.ERASED.value


class MessageRow(NamedTuple):
    """One row of the message table, in the order every bulk statement lists it."""

    conversation_id: int
    provider_id: str
    position: int
    author: str
    is_human: bool
    text: str
    created_at: Any  # a datetime, or the database's text for it off PostgreSQL
    pinned: bool
    mirror_state: str


MESSAGE_COLUMNS = MessageRow._fields
MESSAGE_KEY = ("conversation_id", "provider_id")
MESSAGE_UPDATED = tuple(c for c in MESSAGE_COLUMNS if c not in MESSAGE_KEY)
_STAGE = "lethe_sync_messages"


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def upsert(table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
           conflict: Sequence[str], updates: dict[str, str], returning: str = "",
           where: str = "") -> list[tuple[Any, ...]]:
    """INSERT ... ON CONFLICT DO UPDATE [WHERE] in multi-row statements (PostgreSQL and
    SQLite). Table, column and SQL expressions come from this module, never from input."""
    per_row = len(columns)
    limit = 900 if db.vendor == "sqlite" else 30000
    one = "(" + ", ".join(["%s"] * per_row) + ")"
    sets = ", ".join(f"{col} = {expr}" for col, expr in updates.items())
    out: list[tuple[Any, ...]] = []
    with db.cursor() as cursor:
        for chunk in chunks(rows, max(1, limit // per_row)):
            sql = (f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608  # nosec B608
                   f"VALUES {', '.join([one] * len(chunk))} "
                   f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {sets}"
                   + (f" WHERE {where}" if where else "")
                   + (f" RETURNING {returning}" if returning else ""))
            cursor.execute(sql, [v for row in chunk for v in row])
            if returning:
                out.extend(cursor.fetchall())
    return out


def upsert_characters(connection: Connection, chars: list[records.Character]
                      ) -> dict[str, int]:
    """Every listed character; returns their row ids by provider id."""
    unique = list({c.provider_id: c for c in chars}.values())
    if not unique:
        return {}
    when = db.ops.adapt_datetimefield_value
    rows = [(connection.pk, c.provider_id, (c.name or c.provider_id)[:300], c.description,
             when(c.last_interaction), PRESENT) for c in unique]
    found = upsert(
        Character._meta.db_table,
        ["connection_id", "provider_id", "name", "description", "last_interaction",
         "mirror_state"],
        rows, ["connection_id", "provider_id"],
        {col: f"EXCLUDED.{col}" for col in
         ("name", "description", "last_interaction", "mirror_state")},
        returning="provider_id, id",
    )
    return {pid: pk for pid, pk in found}


def upsert_conversations(connection: Connection, convs: list[records.Conversation],
                         characters: dict[str, int], now: datetime) -> dict[str, int]:
    """Listing fields of every listed conversation, stamped ``synced_at = now``; title and
    counts come with the messages. Returns their row ids by provider id."""
    if not convs:
        return {}
    table = Conversation._meta.db_table
    flags = Conversation._meta.get_field("flags")
    when = db.ops.adapt_datetimefield_value
    rows = [
        (connection.pk, c.provider_id, characters.get(c.character_id or ""),
         (c.title or c.provider_id)[:300], when(c.started_at), when(c.last_message_at), 0,
         c.state, PRESENT, flags.get_db_prep_save(c.flags, db), False, when(now))
        for c in convs
    ]
    found = upsert(
        table,
        ["connection_id", "provider_id", "character_id", "title", "started_at",
         "last_message_at", "message_count", "provider_state", "mirror_state", "flags",
         "protected", "synced_at"],
        rows, ["connection_id", "provider_id"],
        {
            "character_id": "EXCLUDED.character_id",
            "started_at": "EXCLUDED.started_at",
            "provider_state": "EXCLUDED.provider_state",
            "flags": "EXCLUDED.flags",
            "synced_at": "EXCLUDED.synced_at",
            # The provider's last-message time, where it gives one; else the mirror's.
            "last_message_at": f"COALESCE(EXCLUDED.last_message_at, {table}.last_message_at)",
            # An erased conversation stays erased in the mirror whatever the provider lists.
            "mirror_state": f"CASE WHEN {table}.mirror_state = '{ERASED}' THEN '{ERASED}' "
                            f"ELSE '{PRESENT}' END",
        },
        returning="provider_id, id",
    )
    return {pid: pk for pid, pk in found}


def update_conversations(convs: list[Conversation]) -> None:
    """Counts, last-message times and titles of conversations whose messages were read;
    never of one erased meanwhile (its title and count are gone for good)."""
    if db.vendor != "postgresql":
        erased = set(Conversation.objects.filter(
            pk__in=[c.pk for c in convs], mirror_state=ERASED).values_list("pk", flat=True))
        Conversation.objects.bulk_update(
            [c for c in convs if c.pk not in erased], ["message_count", "last_message_at",
                                                       "title"], batch_size=500)
        return
    with db.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Conversation._meta.db_table} AS c SET message_count = v.n, "  # noqa: S608  # nosec B608
            "last_message_at = v.last, title = v.title "
            "FROM unnest(%s::bigint[], %s::int[], %s::timestamptz[], %s::text[]) "
            f"AS v(id, n, last, title) WHERE c.id = v.id AND c.mirror_state <> '{ERASED}'",
            [[c.pk for c in convs], [c.message_count for c in convs],
             [c.last_message_at for c in convs], [c.title for c in convs]])


def _message_types() -> list[str]:
    """The PostgreSQL type of each message column, as binary COPY needs them named."""
    fields = {field.column: field for field in Message._meta.concrete_fields}
    return [str(fields[column].db_type(db)).split("(")[0] for column in MESSAGE_COLUMNS]


def _copy_messages(cursor: Any, table: str, rows: Sequence[MessageRow]) -> None:
    """COPY ``rows`` into ``table`` in binary: a sync copies every message it reads, and
    the text format cost four times as much processor time a row, on the thread whose
    GIL the sync's reader shares."""
    with cursor.cursor.copy(f"COPY {table} ({', '.join(MESSAGE_COLUMNS)}) "
                            "FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_message_types())
        for row in rows:
            copy.write_row(row)


def copy_new_messages(rows: Sequence[MessageRow]) -> None:
    """Messages of conversations new to the mirror: nothing to conflict with, so a plain
    COPY (PostgreSQL only)."""
    with db.cursor() as cursor:
        _copy_messages(cursor, Message._meta.db_table, rows)


class MessageUpserter:
    """Upserts on PostgreSQL through a staging table (COPY in, one INSERT ... SELECT ON
    CONFLICT out) that lives until the transaction ends; elsewhere multi-row upserts."""

    def __init__(self) -> None:
        self.postgres = db.vendor == "postgresql"
        self._staged = False

    def __call__(self, rows: Sequence[MessageRow]) -> list[tuple[int, int, str]]:
        """Returns (id, conversation id, provider id) of each row inserted or rewritten:
        the messages whose findings must be made (anew)."""
        table = Message._meta.db_table
        # A message erased through Lethe keeps its purged row whatever the provider sends.
        kept = f"{table}.mirror_state <> '{ERASED}'"
        changed = "id, conversation_id, provider_id"
        if not self.postgres:
            return [(pk, conv, pid) for pk, conv, pid in upsert(
                table, MESSAGE_COLUMNS, rows, MESSAGE_KEY,
                {col: f"EXCLUDED.{col}" for col in MESSAGE_UPDATED}, where=kept,
                returning=changed)]
        cols = ", ".join(MESSAGE_COLUMNS)
        mine = ", ".join(f"{table}.{col}" for col in MESSAGE_UPDATED)
        theirs = ", ".join(f"EXCLUDED.{col}" for col in MESSAGE_UPDATED)
        with db.cursor() as cursor:
            if not self._staged:
                cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "  # noqa: S608  # nosec B608
                    f"ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA")
                cursor.execute(f"TRUNCATE {_STAGE}")
                self._staged = True
            _copy_messages(cursor, _STAGE, rows)
            # Unchanged rows are not rewritten: a re-sync of a quiet chat costs no writes.
            cursor.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {_STAGE} "  # noqa: S608  # nosec B608
                f"ON CONFLICT ({', '.join(MESSAGE_KEY)}) DO UPDATE SET "
                + ", ".join(f"{col} = EXCLUDED.{col}" for col in MESSAGE_UPDATED)
                + f" WHERE ({mine}) IS DISTINCT FROM ({theirs}) AND {kept}"
                + f" RETURNING {changed}")
            found: list[tuple[int, int, str]] = cursor.fetchall()
            cursor.execute(f"TRUNCATE {_STAGE}")
        return found
