"""Erasure: freeze a selection into jobs, run them item by item, verify, settle the mirror.

Invariants (DESIGN.md section 5) this module keeps:
- only items frozen into a job are ever sent (items are copied in when the draft is made);
- an item is `erased` only after the provider acknowledged it, `verified` only after a
  read-back no longer returns it;
- an uncertain outcome (timeout or reset after sending) is read back before anything is
  sent again, so no item gets a second successful delete;
- every item ends in a final state.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

import providers
from providers.records import Outcome, Target

from .aio import ProviderSession
from .models import Connection, Conversation, ErasureItem, ErasureJob, Message
from .models.mirror import MirrorState

log = logging.getLogger(__name__)

State = ErasureItem.State
MAX_ATTEMPTS = 3
# Waits the provider asks for up to this long are slept through in the worker; longer ones
# pause the job until the time it gave.
MAX_INLINE_WAIT = 30.0


class SelectionError(Exception):
    """The selection cannot become a job (empty, or nothing erasable in it)."""


def freeze(user: Any, conversations: QuerySet[Conversation], scope: dict[str, Any],
           dry_run: bool = False) -> uuid.UUID:
    """Draft one job per connection holding exactly these conversations, as of now."""
    rows = conversations.filter(mirror_state=MirrorState.PRESENT).values_list(
        "connection_id", "id", "provider_id", "character__provider_id"
    )
    return _draft(user, scope, dry_run, (
        (connection_id, ErasureItem.Kind.CONVERSATION, conv_id, None, provider_id, provider_id,
         character_id or "")
        for connection_id, conv_id, provider_id, character_id in rows.iterator(chunk_size=2000)
    ))


def freeze_messages(user: Any, messages: QuerySet[Message], scope: dict[str, Any],
                    dry_run: bool = False) -> uuid.UUID:
    """Draft jobs for single messages, where the provider can erase single messages."""
    erasable = [name for name, cls in providers.REGISTRY.items()
                if "message" in cls.capabilities.erase_kinds]
    rows = messages.filter(
        mirror_state=MirrorState.PRESENT, conversation__mirror_state=MirrorState.PRESENT,
        conversation__connection__provider__in=erasable,
    ).values_list("conversation__connection_id", "conversation_id", "id", "provider_id",
                  "conversation__provider_id", "conversation__character__provider_id")
    return _draft(user, scope, dry_run, (
        (connection_id, ErasureItem.Kind.MESSAGE, conv_id, msg_id, provider_id, conv_pid,
         character_id or "")
        for connection_id, conv_id, msg_id, provider_id, conv_pid, character_id
        in rows.iterator(chunk_size=2000)
    ))


Row = tuple[int, str, int, int | None, str, str, str]


def _draft(user: Any, scope: dict[str, Any], dry_run: bool, rows: Iterable[Row]) -> uuid.UUID:
    request = uuid.uuid4()
    by_connection: dict[int, list[Row]] = {}
    for row in rows:
        by_connection.setdefault(row[0], []).append(row)
    if not by_connection:
        raise SelectionError("Nothing to erase: the selection holds nothing still present "
                             "that the provider can erase.")
    with transaction.atomic():
        for connection_id, items in by_connection.items():
            job = ErasureJob.objects.create(
                request=request, connection_id=connection_id, requested_by=user,
                dry_run=dry_run, scope=scope,
            )
            ErasureItem.objects.bulk_create(
                [
                    ErasureItem(
                        job=job, kind=kind, conversation_id=conv_id, message_id=msg_id,
                        provider_id=provider_id, conversation_provider_id=conv_pid,
                        character_provider_id=character_id,
                        idempotency_key=f"{job.pk}:{kind}:{conv_pid}:{provider_id}",
                    )
                    for _, kind, conv_id, msg_id, provider_id, conv_pid, character_id in items
                ],
                batch_size=2000,
            )
    return request


def confirm(jobs: Iterable[ErasureJob], dry_run: bool, enqueue: bool = True) -> list[ErasureJob]:
    """Queue draft jobs. The task is sent once the transaction has committed; with
    `enqueue=False` the caller runs the jobs itself (the management commands' default)."""
    from . import tasks

    queued = []
    with transaction.atomic():
        for job in jobs:
            locked = ErasureJob.objects.select_for_update().get(pk=job.pk)
            if locked.status != ErasureJob.Status.DRAFT:
                continue
            locked.status = ErasureJob.Status.QUEUED
            locked.dry_run = dry_run
            locked.confirmed_at = timezone.now()
            locked.save(update_fields=["status", "dry_run", "confirmed_at"])
            queued.append(locked)
            if enqueue:
                transaction.on_commit(partial(tasks.run_erasure.delay, locked.pk))
    return queued


def run(job_id: int) -> ErasureJob:
    """Work a job until every item is final (or the job is paused). Safe to run twice."""
    job = ErasureJob.objects.select_related("connection").get(pk=job_id)
    if job.status not in ErasureJob.ACTIVE and job.status != ErasureJob.Status.PAUSED:
        return job
    now = timezone.now()
    if job.throttled_until and job.throttled_until > now:
        return job
    ErasureJob.objects.filter(pk=job.pk).update(
        status=ErasureJob.Status.RUNNING, started_at=job.started_at or now, throttled_until=None
    )
    job.refresh_from_db()
    if job.dry_run:
        job.items.filter(state=State.PENDING).update(
            state=State.WOULD_ERASE, detail="Dry run: nothing was sent."
        )
        return _finish(job)
    try:
        _work(job)
    except providers.AuthError as exc:
        return _pause_for_auth(job, exc)
    except _Throttled as exc:
        ErasureJob.objects.filter(pk=job.pk).update(
            status=ErasureJob.Status.PAUSED, throttled_until=exc.until,
            last_error=f"{job.connection.provider_label} asked us to wait until "
            f"{exc.until:%H:%M:%S} UTC; the job resumes then.",
        )
        job.refresh_from_db()
        return job
    return _finish(job)


class _Throttled(Exception):
    def __init__(self, until: Any) -> None:
        self.until = until


def _target(item: ErasureItem) -> Target:
    return Target(kind=item.kind, provider_id=item.provider_id,  # type: ignore[arg-type]
                  conversation_id=item.conversation_provider_id,
                  character_id=item.character_provider_id)


def _claim(job: ErasureJob, size: int) -> list[ErasureItem]:
    """Take up to `size` pending items for this worker; other workers skip the locked rows."""
    with transaction.atomic():
        now = timezone.now()
        ids = list(
            job.items.select_for_update(skip_locked=True)
            .filter(state=State.PENDING)
            .exclude(next_attempt_at__gt=now)
            .order_by("id")
            .values_list("id", flat=True)[:size]
        )
        # Conditional on still being pending: a backend without row locks cannot double-claim.
        ErasureItem.objects.filter(pk__in=ids, state=State.PENDING).update(
            state=State.IN_FLIGHT, attempts=F("attempts") + 1, updated_at=now
        )
        return list(ErasureItem.objects.filter(pk__in=ids, state=State.IN_FLIGHT).order_by("id"))


def _work(job: ErasureJob) -> None:
    with ProviderSession(job.connection.open_provider()) as session:
        size = session.provider.capabilities.max_batch
        while True:
            # Uncertain outcomes first: read back before anything could be sent again.
            unknown = _items_in(job, State.UNKNOWN)
            if unknown:
                _resolve_unknown(session, unknown)
                continue
            batch = _claim(job, size)
            if not batch:
                if not _wait_for_backoff(job):
                    break
                continue
            try:
                outcomes = session.call(session.provider.erase([_target(i) for i in batch]))
            except providers.RateLimited as exc:
                batch = _keep_partial(batch, exc)
                _release(batch)
                wait = exc.retry_after or 5.0
                if wait > MAX_INLINE_WAIT:
                    raise _Throttled(timezone.now() + timedelta(seconds=wait)) from exc
                time.sleep(wait)
                continue
            except providers.AuthError as exc:
                _release(_keep_partial(batch, exc))
                raise
            except providers.TemporaryError as exc:
                if not exc.sent:
                    _retry_or_fail(batch, str(exc))
                    continue
                outcomes = [Outcome(_target(i), "unknown", str(exc)) for i in batch]
            except providers.ProtocolError as exc:
                # The delete may have happened; the read-back decides.
                outcomes = [Outcome(_target(i), "unknown", str(exc)) for i in batch]
            except providers.ProviderError as exc:
                outcomes = [Outcome(_target(i), "failed", str(exc)) for i in batch]
            _record(batch, outcomes)
        erased = _items_in(job, State.ERASED)
        if erased:
            _verify(session, erased)


def _items_in(job: ErasureJob, state: str) -> list[ErasureItem]:
    return list(job.items.filter(state=state).order_by("id"))


def _keep_partial(batch: list[ErasureItem], exc: providers.ProviderError) -> list[ErasureItem]:
    """Record what the provider settled before it stopped; return the rest of the batch."""
    if not exc.partial:
        return batch
    settled = {(o.target.kind, o.target.provider_id) for o in exc.partial}
    done = [i for i in batch if (i.kind, i.provider_id) in settled]
    _record(done, exc.partial)
    return [i for i in batch if (i.kind, i.provider_id) not in settled]


def _release(batch: list[ErasureItem]) -> None:
    """Put a batch back untouched: nothing reached the provider, so the try does not count."""
    ErasureItem.objects.filter(pk__in=[i.pk for i in batch], state=State.IN_FLIGHT).update(
        state=State.PENDING, attempts=F("attempts") - 1
    )


def _retry_or_fail(batch: list[ErasureItem], reason: str) -> None:
    now = timezone.now()
    for item in batch:
        if item.attempts >= MAX_ATTEMPTS:
            item.state, item.detail = State.FAILED, f"Gave up after {item.attempts} tries: {reason}"
        else:
            item.state, item.detail = State.PENDING, f"Will retry: {reason}"
            item.next_attempt_at = now + timedelta(seconds=2 ** item.attempts)
    ErasureItem.objects.bulk_update(batch, ["state", "detail", "next_attempt_at"])


def _wait_for_backoff(job: ErasureJob) -> bool:
    """With nothing claimable, wait for the earliest item in backoff; False when none is."""
    earliest = (
        job.items.filter(state=State.PENDING).order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True).first()
    )
    if earliest is None:
        return False
    wait = (earliest - timezone.now()).total_seconds()
    if wait > MAX_INLINE_WAIT:
        raise _Throttled(earliest)
    time.sleep(max(wait, 0.0))
    return True


_OUTCOME_STATE = {
    "erased": State.ERASED,
    "already_gone": State.ALREADY_GONE,
    "failed": State.FAILED,
    "unknown": State.UNKNOWN,
}


def _record(batch: list[ErasureItem], outcomes: list[Outcome]) -> None:
    by_id: dict[tuple[str, str], Outcome] = {
        (o.target.kind, o.target.provider_id): o for o in outcomes
    }
    with transaction.atomic():
        for item in batch:
            outcome = by_id.get((item.kind, item.provider_id))
            if outcome is None:
                item.state, item.detail = State.UNKNOWN, "The provider gave no outcome for it."
            else:
                item.state = _OUTCOME_STATE[outcome.status]
                item.detail = outcome.detail
                item.response = outcome.response
        ErasureItem.objects.bulk_update(batch, ["state", "detail", "response"])
        _settle_mirror([i for i in batch if i.state in (State.ERASED, State.ALREADY_GONE)])


def _settle_mirror(items: list[ErasureItem]) -> None:
    conv_ids = [i.conversation_id for i in items if i.kind == "conversation" and i.conversation_id]
    msg_ids = [i.message_id for i in items if i.kind == "message" and i.message_id]
    now = timezone.now()
    if conv_ids:
        Conversation.objects.filter(pk__in=conv_ids).update(
            mirror_state=MirrorState.ERASED, erased_at=now
        )
        Message.objects.filter(conversation_id__in=conv_ids).update(mirror_state=MirrorState.ERASED)
    if msg_ids:
        Message.objects.filter(pk__in=msg_ids).update(mirror_state=MirrorState.ERASED)


def _resolve_unknown(session: ProviderSession, items: list[ErasureItem]) -> None:
    presence = session.call(session.provider.verify([_target(i) for i in items]))
    found: dict[tuple[str, str], str] = {
        (p.target.kind, p.target.provider_id): p.state for p in presence
    }
    for item in items:
        state = found.get((item.kind, item.provider_id))
        if state == "gone":
            item.state = State.ERASED
            item.detail = "Confirmed gone on read-back after an uncertain answer; not sent again."
        elif state == "present" and item.attempts < MAX_ATTEMPTS:
            item.state = State.PENDING
            item.detail = "Still present after an uncertain answer; will be sent again."
        elif state == "present":
            item.state, item.detail = State.FAILED, f"Still present after {item.attempts} tries."
        else:
            item.state, item.detail = State.FAILED, "Soft-deleted at the provider, not erased."
    with transaction.atomic():
        ErasureItem.objects.bulk_update(items, ["state", "detail"])
        _settle_mirror([i for i in items if i.state == State.ERASED])


def _verify(session: ProviderSession, items: list[ErasureItem]) -> None:
    try:
        presence = session.call(session.provider.verify([_target(i) for i in items]))
    except providers.ProviderError as exc:
        # Items stay `erased` (acknowledged, not verified); the job page says so.
        log.warning("verification read-back failed: %s", type(exc).__name__)
        return
    found: dict[tuple[str, str], str] = {
        (p.target.kind, p.target.provider_id): p.state for p in presence
    }
    for item in items:
        state = found.get((item.kind, item.provider_id))
        if state == "gone":
            item.state = State.VERIFIED
        elif state == "soft_deleted":
            item.state, item.detail = State.FAILED, "Soft-deleted at the provider only."
        else:
            item.state = State.FAILED
            item.detail = "The provider acknowledged the delete but still returns it."
    ErasureItem.objects.bulk_update(items, ["state", "detail"])


def _pause_for_auth(job: ErasureJob, exc: providers.AuthError) -> ErasureJob:
    connection = job.connection
    reason = (f"{connection.provider_label} refused the key ending {connection.secret_hint}: "
              f"{exc}. Replace the key in Connections, then resume the job.")
    Connection.objects.filter(pk=connection.pk).update(
        status=Connection.Status.INVALID, last_error=reason
    )
    ErasureJob.objects.filter(pk=job.pk).update(status=ErasureJob.Status.PAUSED, last_error=reason)
    job.refresh_from_db()
    return job


def _finish(job: ErasureJob) -> ErasureJob:
    if job.items.filter(state__in=[State.PENDING, State.IN_FLIGHT, State.UNKNOWN]).exists():
        return job  # another worker still holds items; the last one out finishes the job
    ErasureJob.objects.filter(pk=job.pk, status=ErasureJob.Status.RUNNING).update(
        status=ErasureJob.Status.DONE, finished_at=timezone.now()
    )
    job.refresh_from_db()
    return job
