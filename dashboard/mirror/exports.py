"""Export before erase: the selected conversations with their messages, as JSON Lines or
CSV, streamed. From a preview, the SHA-256 of exactly the bytes sent is recorded on the
jobs (and so in their receipts) once the download completed; the conversation list's
"Export selected" gives the same rows for its selection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from django.db.models import Q, QuerySet
from django.utils import timezone

from ..lib import spreadsheet
from ..models import Conversation, ErasureJob, Message, MirrorState

FIELDS = ["provider", "connection", "character", "conversation_id", "conversation_title",
          "message_id", "position", "author", "is_human", "created_at", "text"]


def _row(m: Message, provider: str, connection_label: str) -> dict[str, object]:
    conv = m.conversation
    return {
        "provider": provider, "connection": connection_label,
        "character": conv.character.name if conv.character else "",
        "conversation_id": conv.provider_id, "conversation_title": conv.title,
        "message_id": m.provider_id, "position": m.position, "author": m.author,
        "is_human": m.is_human,
        "created_at": m.created_at.isoformat() if m.created_at else "",
        "text": m.text,
    }


def _rows(jobs: list[ErasureJob]) -> Iterator[dict[str, object]]:
    for job in jobs:
        items = job.items.all()
        messages = Message.objects.filter(
            Q(conversation__in=items.filter(kind="conversation").values("conversation_id"))
            | Q(pk__in=items.filter(kind="message").values("message_id")),
            # What was erased is no longer Lethe's to give out, not even as empty rows.
            mirror_state=MirrorState.PRESENT,
        ).select_related("conversation__character").order_by("conversation_id", "position")
        for m in messages.iterator(chunk_size=2000):
            yield _row(m, job.provider, job.connection_label)


def _selected_rows(conversations: QuerySet[Conversation]) -> Iterator[dict[str, object]]:
    messages = Message.objects.filter(
        conversation__in=conversations.values("pk"), mirror_state=MirrorState.PRESENT,
    ).select_related("conversation__character", "conversation__connection").order_by(
        "conversation_id", "position")
    for m in messages.iterator(chunk_size=2000):
        connection = m.conversation.connection
        yield _row(m, connection.provider, connection.label)


def _encoded(rows: Iterator[dict[str, object]], fmt: str) -> Iterator[bytes]:
    if fmt == "jsonl":
        return ((json.dumps(row, ensure_ascii=False) + "\n").encode() for row in rows)
    return spreadsheet.rows(FIELDS, ([row[name] for name in FIELDS] for row in rows))


def selected(conversations: QuerySet[Conversation], fmt: str) -> Iterator[bytes]:
    """The messages of a selection of conversations (no job yet, so no hash recorded)."""
    return _encoded(_selected_rows(conversations), fmt)


def stream(jobs: list[ErasureJob], fmt: str) -> Iterator[bytes]:
    """The export, chunk by chunk; records its hash on the jobs when it has all been sent."""
    digest = hashlib.sha256()
    for chunk in _encoded(_rows(jobs), fmt):
        digest.update(chunk)
        yield chunk
    ErasureJob.objects.filter(pk__in=[j.pk for j in jobs]).update(
        exported_at=timezone.now(), export_sha256=digest.hexdigest()
    )
