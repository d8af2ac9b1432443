"""Mirror a connection's histories: read everything from the provider, then write it at once.

All provider reads happen before the first write, inside one transaction, so a failed sync
leaves the existing mirror exactly as it was and records why.

Full on the first run; afterwards incremental: messages are re-read only for conversations
that are new, whose last-message time the provider reports as changed, or (where the
provider reports no such time) that started within RECENT of the previous sync, because
only those can have grown.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

import providers
from providers import records

from .models import Character, Connection, Conversation, Message, SyncRun
from .models.mirror import MirrorState

log = logging.getLogger(__name__)

RECENT = timedelta(days=2)
# A run still queued or running after this long lost its worker; it no longer blocks a new one.
STALE = timedelta(minutes=30)


@dataclass
class Fetched:
    account: records.Account | None = None
    notes: list[str] = field(default_factory=list)
    vanished: set[str] = field(default_factory=set)
    characters: list[records.Character] = field(default_factory=list)
    conversations: list[records.Conversation] = field(default_factory=list)
    # Messages per conversation provider id, only for the conversations that were re-read.
    messages: dict[str, list[records.Message]] = field(default_factory=dict)


def in_progress(connection: Connection) -> SyncRun | None:
    """The run under way for this connection, after settling runs whose worker was lost."""
    unfinished = connection.sync_runs.filter(
        status__in=[SyncRun.Status.QUEUED, SyncRun.Status.RUNNING]
    )
    unfinished.filter(created_at__lt=timezone.now() - STALE).update(
        status=SyncRun.Status.FAILED, finished_at=timezone.now(),
        error="Interrupted: no worker finished it. Nothing was changed; sync again.",
    )
    return unfinished.first()


def start(connection: Connection, user: Any = None) -> SyncRun:
    full = not connection.sync_runs.filter(status=SyncRun.Status.OK).exists()
    return SyncRun.objects.create(
        connection=connection,
        requested_by=user if getattr(user, "is_authenticated", False) else None,
        full=full,
    )


def _needs_messages(conv: records.Conversation, known: dict[str, Conversation],
                    since: datetime | None) -> bool:
    mirrored = known.get(conv.provider_id)
    if mirrored is None or since is None:
        return True
    if conv.last_message_at is not None:
        return conv.last_message_at != mirrored.last_message_at
    started = conv.started_at or since
    return started >= since - RECENT


async def _fetch(provider: providers.Provider, known: dict[str, Conversation],
                 since: datetime | None) -> Fetched:
    out = Fetched()
    async with provider:
        out.account = await provider.check()
        async for character in provider.characters():
            out.characters.append(character)
            async for conv in provider.conversations(character):
                out.conversations.append(conv)
        stale = [c for c in out.conversations if _needs_messages(c, known, since)]
        # Several conversations in flight at once; the provider's rate budget paces them.
        semaphore = asyncio.Semaphore(4)

        async def read(conv: records.Conversation) -> None:
            async with semaphore:
                try:
                    out.messages[conv.provider_id] = [m async for m in provider.messages(conv)]
                except providers.NotFound:
                    # Listed a moment ago, gone now: deleted elsewhere while we synced.
                    out.vanished.add(conv.provider_id)

        await asyncio.gather(*(read(c) for c in stale))
    out.notes = list(dict.fromkeys(provider.notes))
    return out


def run(run_id: int) -> SyncRun:
    sync_run = SyncRun.objects.select_related("connection").get(pk=run_id)
    if sync_run.finished:
        return sync_run
    connection = sync_run.connection
    sync_run.status = SyncRun.Status.RUNNING
    sync_run.started_at = timezone.now()
    sync_run.save(update_fields=["status", "started_at"])
    known = {c.provider_id: c for c in connection.conversations.all()}
    since = None if sync_run.full else connection.last_synced_at
    try:
        fetched = asyncio.run(_fetch(connection.open_provider(), known, since))
        with transaction.atomic():
            _write(connection, sync_run, fetched, known)
    except providers.ProviderError as exc:
        _fail(sync_run, connection, exc)
    except Exception as exc:  # keep the run row honest whatever went wrong
        log.exception("sync %s failed", sync_run.pk)
        _fail(sync_run, connection, exc, unexpected=True)
    return sync_run


def _fail(sync_run: SyncRun, connection: Connection, exc: Exception,
          unexpected: bool = False) -> None:
    provider_label = connection.provider_label
    if isinstance(exc, providers.AuthError):
        reason = f"{provider_label} refused the key ending {connection.secret_hint}: {exc}. " \
            "Replace the key on the connection."
        connection.status = Connection.Status.INVALID
    elif unexpected:
        reason = f"Internal error while syncing ({type(exc).__name__}); nothing was changed."
    else:
        reason = f"{provider_label}: {exc}"
    connection.last_error = reason
    connection.save(update_fields=["status", "last_error"])
    sync_run.status = SyncRun.Status.FAILED
    sync_run.error = reason
    sync_run.finished_at = timezone.now()
    sync_run.save()


def _write(connection: Connection, sync_run: SyncRun, fetched: Fetched,
           known: dict[str, Conversation]) -> None:
    now = timezone.now()
    characters = {}
    for c in fetched.characters:
        characters[c.provider_id], _ = Character.objects.update_or_create(
            connection=connection, provider_id=c.provider_id,
            defaults={"name": c.name or c.provider_id, "description": c.description,
                      "last_interaction": c.last_interaction,
                      "mirror_state": MirrorState.PRESENT},
        )
    listed = set()
    for conv in fetched.conversations:
        if conv.provider_id in fetched.vanished:
            continue
        listed.add(conv.provider_id)
        msgs = fetched.messages.get(conv.provider_id)
        values: dict[str, Any] = {
            "character": characters.get(conv.character_id),
            "started_at": conv.started_at,
            "provider_state": conv.state,
            "flags": conv.flags,
            "synced_at": now,
        }
        if msgs is not None:
            times = [m.created_at for m in msgs if m.created_at]
            values["message_count"] = len(msgs)
            values["last_message_at"] = (
                conv.last_message_at or (max(times) if times else None) or conv.started_at or now
            )
            first_human = next((m.text for m in msgs if m.is_human and m.text.strip()), "")
            values["title"] = conv.title or _title(first_human) or conv.provider_id
        elif conv.last_message_at:
            values["last_message_at"] = conv.last_message_at
        previous = known.get(conv.provider_id)
        if previous is None or previous.mirror_state != MirrorState.ERASED:
            values["mirror_state"] = MirrorState.PRESENT
        mirrored, _ = Conversation.objects.update_or_create(
            connection=connection, provider_id=conv.provider_id, defaults=values
        )
        if msgs is not None:
            _write_messages(mirrored, msgs)
            sync_run.messages += len(msgs)
    gone = (
        Conversation.objects.filter(connection=connection, mirror_state=MirrorState.PRESENT)
        .exclude(provider_id__in=listed)
    )
    sync_run.gone = gone.update(mirror_state=MirrorState.GONE)
    Character.objects.filter(connection=connection).exclude(
        provider_id__in=characters.keys()
    ).update(mirror_state=MirrorState.GONE)

    sync_run.notes = "\n".join(fetched.notes)
    sync_run.characters = len(fetched.characters)
    sync_run.conversations = len(fetched.conversations)
    sync_run.status = SyncRun.Status.OK
    sync_run.finished_at = timezone.now()
    sync_run.save()
    connection.last_synced_at = sync_run.started_at
    connection.last_error = ""
    if connection.status == Connection.Status.INVALID:
        connection.status = Connection.Status.OK
    if fetched.account:
        connection.account_name = fetched.account.name[:200]
    connection.save(update_fields=["last_synced_at", "last_error", "status", "account_name"])


def _write_messages(conversation: Conversation, msgs: list[records.Message]) -> None:
    rows = [
        Message(conversation=conversation, provider_id=m.provider_id, position=m.position,
                author=m.author[:200], is_human=m.is_human, text=m.text,
                created_at=m.created_at, pinned=m.pinned, mirror_state=MirrorState.PRESENT)
        for m in msgs
    ]
    Message.objects.bulk_create(
        rows, batch_size=1000, update_conflicts=True,
        unique_fields=["conversation", "provider_id"],
        update_fields=["position", "author", "is_human", "text", "created_at", "pinned",
                       "mirror_state"],
    )
    ids = [m.provider_id for m in msgs]
    conversation.messages.filter(~Q(provider_id__in=ids), mirror_state=MirrorState.PRESENT).update(
        mirror_state=MirrorState.GONE
    )


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 80 else line[:79] + "…"
