"""Findings kept in step with the mirror: the detectors of `lib.detect` run over messages a
sync wrote (new ones, and those whose text changed) a batch at a time, and over the whole
mirror with `manage.py find`. What is stored is a `Finding` (position and masked preview),
never the matched value.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, time
from typing import Any

from django.conf import settings
from django.db import connection as db
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..lib import queue
from ..lib.detect import Found, Pattern, Scanner
from ..models import (
    Conversation,
    Finding,
    FindingNotice,
    FindingPattern,
    Message,
    MirrorState,
)
from .bulk import MessageRow
from .titles import derived_title

Key = tuple[int, str]  # (conversation id, message provider id)


def scanner() -> Scanner | None:
    """The detectors in use now (None when LETHE_FINDINGS is off): the standard ones for
    LETHE_FINDINGS_REGION, then the team's patterns from the settings and the admin."""
    if not settings.LETHE_FINDINGS:
        return None
    extra = [Pattern(name, regex) for name, regex in settings.LETHE_FINDINGS_PATTERNS.items()]
    extra += [Pattern(p.name, p.pattern)
              for p in FindingPattern.objects.filter(enabled=True).order_by("name")]
    return Scanner.standard(settings.LETHE_FINDINGS_REGION, extra)


def _rows(connection_id: int, conversation_id: int, message_id: int,
          found: Iterable[Found]) -> list[Finding]:
    return [Finding(connection_id=connection_id, conversation_id=conversation_id,
                    message_id=message_id, kind=f.kind, detector=f.detector[:100],
                    start=f.start, end=f.end, preview=f.preview[:80]) for f in found]


class Recorder:
    """The findings of one sync, written beside its bulk writes (same transaction)."""

    def __init__(self, connection_id: int) -> None:
        self.connection_id = connection_id
        self.scanner = scanner()
        self.new: Counter[str] = Counter()  # findings this sync added, by kind

    def _scan(self, rows: Sequence[MessageRow]) -> dict[Key, list[Found]]:
        if self.scanner is None or not rows:
            return {}
        return {(rows[i].conversation_id, rows[i].provider_id): hits
                for i, hits in self.scanner.scan_many([r.text for r in rows])}

    def scan_beside(self, rows: Sequence[MessageRow]) -> Scan:
        """Start scanning messages about to be copied in: the scan runs in a thread of its
        own while this one waits on the database for the copy (which releases the GIL),
        so on two cores detection costs a sync or an ingest little of its time."""
        return Scan(self, rows)

    def inserted(self, scan: Scan) -> None:
        """Messages new to the mirror, once copied (their ``scan`` started before the
        copy): their ids are looked up only for those that hold something, which are few."""
        hits = scan.result()
        if not hits:
            return
        if db.vendor != "postgresql":
            ids = Message.objects.filter(
                conversation_id__in={c for c, _ in hits}, provider_id__in={p for _, p in hits}
            ).values_list("id", "conversation_id", "provider_id")
            self._write({(c, p): pk for pk, c, p in ids if (c, p) in hits}, hits)
            return
        # One statement: the findings joined to their messages by key, in the database.
        flat = [(c, p, f) for (c, p), found in hits.items() for f in found]
        with db.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {Finding._meta.db_table} (connection_id, conversation_id, "  # noqa: S608  # nosec B608
                'message_id, kind, detector, start, "end", preview, found_at) '
                "SELECT %s, m.conversation_id, m.id, v.kind, v.detector, v.start, v.stop, "
                "v.preview, now() FROM unnest(%s::bigint[], %s::text[], %s::text[], "
                "%s::text[], %s::int[], %s::int[], %s::text[]) "
                "AS v(conv, pid, kind, detector, start, stop, preview) "
                f"JOIN {Message._meta.db_table} m "
                "ON m.conversation_id = v.conv AND m.provider_id = v.pid",
                [self.connection_id, [c for c, _, _ in flat], [p for _, p, _ in flat],
                 [f.kind for _, _, f in flat], [f.detector[:100] for _, _, f in flat],
                 [f.start for _, _, f in flat], [f.end for _, _, f in flat],
                 [f.preview[:80] for _, _, f in flat]])
        self.new.update(f.kind for _, _, f in flat)

    def written(self, rows: Sequence[MessageRow], changed: Sequence[tuple[int, int, str]]
                ) -> None:
        """Messages an upsert inserted or rewrote (``changed``: id, conversation id,
        provider id, as the upsert returned them): their findings are made anew."""
        if self.scanner is None or not changed:
            return
        Finding.objects.filter(message_id__in=[pk for pk, _, _ in changed]).delete()
        keys = {(c, p): pk for pk, c, p in changed}
        hits = self._scan([r for r in rows if (r.conversation_id, r.provider_id) in keys])
        self._write(keys, hits)

    def _write(self, ids: dict[Key, int], hits: dict[Key, list[Found]]) -> None:
        made = [finding for key, found in hits.items() if key in ids
                for finding in _rows(self.connection_id, key[0], ids[key], found)]
        Finding.objects.bulk_create(made, batch_size=1000)
        self.new.update(f.kind for f in made)


class Scan(threading.Thread):
    """`Recorder._scan` of some rows, in a thread; `result` waits for it (and raises what
    it raised). No database work happens in it."""

    def __init__(self, recorder: Recorder, rows: Sequence[MessageRow]) -> None:
        super().__init__(name="lethe-findings-scan", daemon=True)
        self._recorder, self._rows = recorder, rows
        self._hits: dict[Key, list[Found]] = {}
        self._error: BaseException | None = None
        if recorder.scanner is not None and rows:
            self.start()

    def run(self) -> None:
        try:
            self._hits = self._recorder._scan(self._rows)
        except BaseException as exc:  # raised again in the thread that asks for the result
            self._error = exc

    def result(self) -> dict[Key, list[Found]]:
        if self.ident is not None:
            self.join()
        if self._error is not None:
            raise self._error
        return self._hits


def announce(connection_id: int, new: Counter[str]) -> FindingNotice | None:
    """Put a notice of ``new`` findings of the kinds LETHE_FINDINGS_NOTIFY names in the
    outbox, in the caller's (the sync's) transaction, and ask a worker to send it."""
    wanted = {kind: n for kind, n in new.items()
              if n and kind in settings.LETHE_FINDINGS_NOTIFY}
    if not wanted:
        return None
    notice = FindingNotice.objects.create(connection_id=connection_id, counts=wanted)
    queue.send(queue.NOTIFY_FINDINGS, notice.pk)
    return notice


def rescan(batch: int = 2000, after: int = 0, connection_id: int | None = None,
           report: object = None) -> tuple[int, int, int]:
    """Findings of the whole mirror made anew, ``batch`` messages at a time (each batch
    its own transaction, in id order, so a stopped run resumes ``after`` the last id it
    reported). Returns (messages scanned, findings written, last id)."""
    found_scanner = scanner()
    if found_scanner is None:
        return 0, 0, after
    present = Message.objects.filter(mirror_state__in=[MirrorState.PRESENT, MirrorState.GONE])
    if connection_id is not None:
        present = present.filter(conversation__connection_id=connection_id)
    scanned = written = 0
    last = after
    while True:
        with transaction.atomic():
            # Locked, so that a purge of one of them (an erasure outcome) waits for this
            # batch and then drops what it wrote, or went first and is seen here.
            chosen = list(present.filter(id__gt=last).order_by("id").select_for_update(
                of=("self",)).values_list("id", "conversation_id",
                                          "conversation__connection_id", "text")[:batch])
            if not chosen:
                return scanned, written, last
            ids = [pk for pk, _, _, _ in chosen]
            old = Finding.objects.filter(message_id__in=ids)
            # What someone dismissed stays dismissed while the text is the same.
            dismissed = {(f.message_id, f.kind, f.start, f.end): f for f in
                         old.filter(dismissed_at__isnull=False)}
            old.delete()
            hits = list(found_scanner.scan_many([c[3] for c in chosen]))
            made = [finding for i, found in hits
                    for finding in _rows(chosen[i][2], chosen[i][1], chosen[i][0], found)]
            _mask_titles([(chosen[i][1], chosen[i][3]) for i, _ in hits], found_scanner)
            for finding in made:
                was = dismissed.get((finding.message_id, finding.kind, finding.start,
                                     finding.end))
                if was is not None:
                    finding.dismissed_at, finding.dismissed_by_id = (was.dismissed_at,
                                                                     was.dismissed_by_id)
            Finding.objects.bulk_create(made, batch_size=1000)
        scanned += len(chosen)
        written += len(made)
        last = ids[-1]
        if callable(report):
            report(scanned, written, last)


def _mask_titles(texts: list[tuple[int, str]], found_scanner: Scanner) -> None:
    """Titles a conversation took from one of these messages before findings masked them
    (or before a pattern was added) are masked now."""
    by_conv: dict[int, list[str]] = {}
    for conv_id, text in texts:
        by_conv.setdefault(conv_id, []).append(text)
    for conv in Conversation.objects.filter(pk__in=list(by_conv)).only("pk", "title"):
        for text in by_conv[conv.pk]:
            if conv.title == derived_title(text):
                Conversation.objects.filter(pk=conv.pk).update(
                    title=derived_title(text, found_scanner))


def matching(user: Any, data: dict[str, Any]) -> QuerySet[Finding]:
    """Findings visible to ``user`` that match the cleaned FindingFilter data: one function
    for the list, its counts and "Erase these messages", so they never disagree. Only
    findings of messages still present: those are what can still be erased; open ones, or
    with ``dismissed`` those someone dismissed."""
    qs = Finding.objects.visible_to(user).filter(message__mirror_state=MirrorState.PRESENT,
                                                 dismissed_at__isnull=not data.get("dismissed"))
    if data.get("connection"):
        qs = qs.filter(connection_id=data["connection"])
    if data.get("kind"):
        qs = qs.filter(kind=data["kind"])
    if data.get("character"):
        qs = qs.filter(conversation__character_id=data["character"])
    tz = timezone.get_current_timezone()
    if data.get("start"):
        qs = qs.filter(message__created_at__gte=datetime.combine(data["start"], time.min, tz))
    if data.get("end"):
        qs = qs.filter(message__created_at__lte=datetime.combine(data["end"], time.max, tz))
    return qs


def scope_of(data: dict[str, Any]) -> dict[str, Any]:
    """The filter as plain JSON, recorded on the jobs it makes."""
    return {"findings": True, **{k: (v.isoformat() if hasattr(v, "isoformat") else v)
                                 for k, v in data.items() if v not in (None, "")}}
