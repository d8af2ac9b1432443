"""The writing half of a sync: takes the reader's messages in order and writes them in bulk
inside the caller's transaction (one per sync, so a failed sync changes nothing)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection as db
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from providers import records

from ..models import Character, Connection, Conversation, Message, MirrorState, SyncRun
from . import bulk, findings
from .reader import (
    Finished,
    Item,
    Known,
    Listed,
    NewestOfChat,
    Vanished,
    WholeChat,
)
from .titles import derived_title

# Messages buffered before one bulk write.
FLUSH_ROWS = 5000


@dataclass
class Stats:
    messages: int = 0
    gone: int = 0
    notes: list[str] = field(default_factory=list)


class Writer:
    def __init__(self, connection: Connection, sync_run: SyncRun,
                 known: dict[str, Known]) -> None:
        self.connection = connection
        self.sync_run = sync_run
        self.known = known
        self.now = timezone.now()
        self.stats = Stats()
        self.listing: Listed | None = None
        self.by_pid: dict[str, records.Conversation] = {}
        self.pks: dict[str, int] = {}
        # Rows of conversations the mirror knew (upserted) and of new ones (copied).
        self.rows: list[bulk.MessageRow] = []
        self.fresh: list[bulk.MessageRow] = []
        self.touched: list[Conversation] = []
        # Previously mirrored chats that were read again: their missing messages are gone.
        self.reread: dict[int, list[str]] = {}
        # Chats read back only to what the mirror had: counted from the mirror.
        self.recount: list[int] = []
        self.postgres = db.vendor == "postgresql"
        self.upsert_messages = bulk.MessageUpserter()
        self.findings = findings.Recorder(connection.pk)
        if self.postgres:
            with db.cursor() as cursor:
                # New messages land in the full-text index's pending list and are merged
                # later in bulk, instead of one GIN insert per message (this transaction only).
                cursor.execute("SET LOCAL gin_pending_list_limit = 65536")
                # Django's foreign keys are checked at COMMIT by default: a sync would then
                # check every message at the very end, after the reading is over. Checked
                # with each bulk write instead, the work overlaps with the reading.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    def consume(self, items: Iterable[Item]) -> None:
        for item in items:
            match item:
                case Listed():
                    self.write_listing(item)
                case WholeChat(provider_id=pid, messages=msgs):
                    self.add_whole(pid, msgs)
                case NewestOfChat(provider_id=pid, messages=msgs):
                    self.add_newest(pid, msgs)
                case Vanished(provider_id=pid):
                    self.vanish(pid)
                case Finished(notes=notes):
                    self.stats.notes = notes
        self.flush()
        self.finish()
        if self.postgres:
            with db.cursor() as cursor:
                # Back to Django's default for whatever else the caller's transaction does.
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")

    def write_listing(self, listing: Listed) -> None:
        self.listing = listing
        characters = bulk.upsert_characters(self.connection, listing.characters)
        convs = list({c.provider_id: c for c in listing.conversations}.values())
        self.by_pid = {c.provider_id: c for c in convs}
        self.pks = bulk.upsert_conversations(self.connection, convs, characters, self.now)

    def add_whole(self, pid: str, msgs: list[records.Message]) -> None:
        """A conversation read whole: its messages are all there is."""
        msgs = self._stage(pid, msgs, offset=0)
        conv = self.by_pid[pid]
        first_human = next((m.text for m in msgs if m.is_human and m.text.strip()), "")
        self._touch(pid, msgs, len(msgs),
                    (conv.title or derived_title(first_human, self.findings.scanner)
                     or conv.provider_id)[:300])
        if pid in self.known:
            self.reread[self.pks[pid]] = [m.provider_id for m in msgs]
        self._flush_when_full()

    def add_newest(self, pid: str, msgs: list[records.Message]) -> None:
        """A conversation read back to the mirror's newest message (position 0 here). Its
        count is taken from the mirror once written (messages erased through Lethe are not
        counted twice)."""
        known = self.known[pid]
        msgs = self._stage(pid, msgs, offset=known.newest_position)
        # The count written here is replaced by the recount in the same flush.
        self._touch(pid, msgs, 0, self.by_pid[pid].title or known.title)
        self.recount.append(self.pks[pid])
        self._flush_when_full()

    def _stage(self, pid: str, msgs: list[records.Message], offset: int
               ) -> list[records.Message]:
        pk = self.pks[pid]
        adapt = None if self.postgres else db.ops.adapt_datetimefield_value
        # One row per provider id: an upsert may not touch the same row twice. What was
        # erased through Lethe never comes back, even if the provider still returns it.
        erased = self.known[pid].erased if pid in self.known else frozenset()
        msgs = list({m.provider_id: m for m in msgs if m.provider_id not in erased}.values())
        # A chat new to the mirror cannot conflict with anything: straight COPY, no upsert.
        rows = self.rows if pid in self.known or not self.postgres else self.fresh
        present = bulk.PRESENT
        for m in msgs:
            created = m.created_at if adapt is None else adapt(m.created_at)
            rows.append(bulk.MessageRow(pk, m.provider_id, m.position + offset, m.author[:200],
                                        m.is_human, m.text, created, m.pinned, present))
        self.stats.messages += len(msgs)
        return msgs

    def _touch(self, pid: str, msgs: list[records.Message], count: int, title: str) -> None:
        conv = self.by_pid[pid]
        times = [m.created_at for m in msgs if m.created_at]
        self.touched.append(Conversation(
            pk=self.pks[pid], message_count=count,
            last_message_at=(conv.last_message_at or (max(times) if times else None)
                             or conv.started_at or self.now),
            title=title,
        ))

    def _flush_when_full(self) -> None:
        if len(self.rows) + len(self.fresh) >= FLUSH_ROWS:
            self.flush()

    def vanish(self, pid: str) -> None:
        previous = self.known.get(pid)
        pk = self.pks.pop(pid)
        if previous is None:
            # Created from the listing a moment ago; it never really existed for us.
            Conversation.objects.filter(pk=pk).delete()
            return
        # Restore what the listing upsert overwrote, then call it gone.
        state = (MirrorState.GONE if previous.mirror_state == MirrorState.PRESENT
                 else previous.mirror_state)
        Conversation.objects.filter(pk=pk).update(mirror_state=state,
                                                  last_message_at=previous.last_message_at)
        if previous.mirror_state == MirrorState.PRESENT:
            self.stats.gone += 1

    def flush(self) -> None:
        if self.fresh:
            scan = self.findings.scan_beside(self.fresh)
            bulk.copy_new_messages(self.fresh)
            self.findings.inserted(scan)
            self.fresh = []
        if self.rows:
            self.findings.written(self.rows, self.upsert_messages(self.rows))
            self.rows = []
        if self.touched:
            bulk.update_conversations(self.touched)
            self.touched = []
        if self.recount:
            present = Message.objects.filter(
                conversation=OuterRef("pk"), mirror_state=MirrorState.PRESENT
            ).order_by().values("conversation").annotate(n=Count("pk")).values("n")
            Conversation.objects.filter(pk__in=self.recount).update(
                message_count=Coalesce(Subquery(present), 0))
            self.recount = []
        for pk, ids in self.reread.items():
            Message.objects.filter(~Q(provider_id__in=ids), conversation_id=pk,
                                   mirror_state=MirrorState.PRESENT
                                   ).update(mirror_state=MirrorState.GONE)
        self.reread = {}

    def finish(self) -> None:
        listing = self.listing
        if listing is None:
            raise RuntimeError("the sync reader finished without a listing")
        sync_run, connection = self.sync_run, self.connection
        # Every conversation still listed was stamped with `now` by the listing upsert.
        gone = Conversation.objects.filter(
            Q(synced_at__lt=self.now) | Q(synced_at__isnull=True),
            connection=connection, mirror_state=MirrorState.PRESENT,
        )
        self.stats.gone += gone.update(mirror_state=MirrorState.GONE)
        Character.objects.filter(connection=connection).exclude(
            provider_id__in={c.provider_id for c in listing.characters}
        ).update(mirror_state=MirrorState.GONE)

        findings.announce(connection.pk, self.findings.new)
        sync_run.notes = "\n".join(self.stats.notes)
        sync_run.characters = len(listing.characters)
        sync_run.conversations = len(listing.conversations)
        sync_run.messages = self.stats.messages
        sync_run.gone = self.stats.gone
        sync_run.status = SyncRun.Status.OK
        sync_run.finished_at = timezone.now()
        sync_run.save()
        connection.last_synced_at = sync_run.started_at
        connection.last_error = ""
        if connection.status in (Connection.Status.INVALID, Connection.Status.UNCHECKED):
            connection.status = Connection.Status.OK
        if listing.account:
            connection.account_name = listing.account.name[:200]
        connection.save(update_fields=["last_synced_at", "last_error", "status",
                                       "account_name"])
