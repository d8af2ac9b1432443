"""Work an erasure job: claim items, send them, record each answer, read back, verify.

Invariants kept here (DESIGN.md section 5):
- an item is `erased` only after the provider acknowledged it, `verified` only after a
  read-back no longer returns it, `soft_deleted` when the provider only marked it;
- an uncertain outcome (timeout or reset after sending, unparseable answer) is read back
  before anything could be sent again, so no item gets a second successful delete;
- several workers may work one job: items are claimed under row locks (SKIP LOCKED), and a
  claimed item is in flight until its answer is recorded.
Waits the provider asks for are slept through when short; longer ones are written into the
items' next-attempt time and the job's `throttled_until`, and the sweeper requeues the job.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db import connection as db_connection
from django.db.models import F
from django.utils import timezone

import providers
from providers.records import Outcome, Target

from . import audit, notify
from .aio import ProviderSession
from .jobstate import Event, IllegalTransition, advance
from .models import Connection, Conversation, ErasureItem, ErasureJob, Message
from .models.mirror import MirrorState
from .roles import Role, at_least

log = logging.getLogger(__name__)

State = ErasureItem.State
MAX_ATTEMPTS = 3
MAX_INLINE_WAIT = 30.0
RETRY_LATER = 30.0  # seconds before a job whose read-back failed is tried again
# What a cancelled job still reads back: uncertain sends, and acknowledged ones not verified
# (the sweeper brings it back for these; an item in flight is its worker's until stuck).
TO_READ_BACK = (State.UNKNOWN, State.ERASED)
Key = tuple[str, str]


class _Throttled(Exception):
    def __init__(self, until: datetime) -> None:
        self.until = until


def run(job_id: int) -> ErasureJob:
    """Work a job until no item is open, the job is paused or cancelled, or the provider
    asks for a long wait. Safe to call any number of times, from any number of workers."""
    job = ErasureJob.objects.select_related("connection").get(pk=job_id)
    if job.status == ErasureJob.Status.CANCELLED:
        if job.items.filter(state__in=(State.IN_FLIGHT, *TO_READ_BACK)).exists():
            _settle_uncertain_only(job)
        return job
    if not _requester_may_still_act(job):
        job.refresh_from_db()
        return job
    if not _start(job):
        return job
    job.refresh_from_db()
    if job.dry_run:
        job.items.filter(state=State.PENDING).update(
            state=State.WOULD_ERASE, detail="Dry run: nothing was sent.", settled_at=timezone.now()
        )
        return finish_if_settled(job)
    try:
        _work(job)
    except providers.AuthError as exc:
        _pause_for_auth(job, exc)
    except _Throttled as exc:
        ErasureJob.objects.filter(pk=job.pk).update(throttled_until=exc.until)
    except providers.RateLimited as exc:
        wait = timedelta(seconds=exc.retry_after or RETRY_LATER)
        ErasureJob.objects.filter(pk=job.pk).update(throttled_until=timezone.now() + wait)
    except providers.ProviderError as exc:
        # A read-back failed (an outage, a garbled answer): nothing is sent without it, so
        # the items wait and the sweeper brings the job back later.
        ErasureJob.objects.filter(pk=job.pk).update(
            throttled_until=timezone.now() + timedelta(seconds=RETRY_LATER),
            last_error=f"{job.connection.provider_label}: {exc}. Trying again shortly.")
    return finish_if_settled(job)


def _requester_may_still_act(job: ErasureJob) -> bool:
    """Checked before any secret is decrypted: access or role may have been taken away
    since the job was confirmed. Then the job pauses and says why; nothing is sent."""
    requester = job.requested_by
    if (Connection.objects.visible_to(requester).filter(pk=job.connection_id).exists()
            and at_least(requester, Role.OPERATOR)):
        return True
    with transaction.atomic():
        locked = ErasureJob.objects.select_for_update().get(pk=job.pk)
        try:
            locked.status = advance(locked.status, Event.PAUSE)
        except IllegalTransition:
            return False
        locked.last_error = (f"{requester.get_username()} no longer has access to this "
                             "connection (or the operator role); nothing was sent. Someone "
                             "who has can cancel it, or it can be resumed once access is back.")
        locked.save(update_fields=["status", "last_error"])
    return False


def _start(job: ErasureJob) -> bool:
    with transaction.atomic():
        locked = ErasureJob.objects.select_for_update().get(pk=job.pk)
        try:
            locked.status = advance(locked.status, Event.START)
        except IllegalTransition:
            return False
        now = timezone.now()
        locked.started_at = locked.started_at or now
        locked.heartbeat_at = now
        locked.throttled_until = None
        locked.last_error = ""
        locked.save(update_fields=["status", "started_at", "heartbeat_at", "throttled_until",
                                   "last_error"])
    return True


def _still_running(job: ErasureJob) -> bool:
    """Heartbeat, and stop when someone paused or cancelled the job meanwhile."""
    return bool(ErasureJob.objects.filter(pk=job.pk, status=ErasureJob.Status.RUNNING)
                .update(heartbeat_at=timezone.now()))


def _target(item: ErasureItem) -> Target:
    return Target(kind=item.kind, provider_id=item.provider_id,  # type: ignore[arg-type]
                  conversation_id=item.conversation_provider_id,
                  character_id=item.character_provider_id)


def _key(target: Target) -> Key:
    return (target.kind, target.provider_id)


def claim(job: ErasureJob, size: int) -> list[ErasureItem]:
    """Take up to `size` due pending items; other workers skip the locked rows."""
    with transaction.atomic():
        now = timezone.now()
        if not ErasureJob.objects.filter(pk=job.pk, status=ErasureJob.Status.RUNNING).exists():
            return []  # paused or cancelled since the last look: claim nothing more
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
        size = settings.LETHE_ERASE_BATCH or session.provider.capabilities.max_batch
        while _still_running(job):
            # Uncertain outcomes first: read back before anything could be sent again.
            unknown = _items_in(job, State.UNKNOWN)
            if unknown:
                _resolve_unknown(session, unknown)
                continue
            batch = claim(job, size)
            if not batch:
                if not _wait_for_backoff(job):
                    break
                continue
            _send(session, batch)
        _verify(session, job)


@contextmanager
def keepalive(job: ErasureJob, items: list[ErasureItem]) -> Iterator[None]:
    """While a long provider call runs, keep the job's heartbeat and its items fresh from a
    side thread, so the sweeper never takes items from a worker that is still sending them.
    It skips rows someone else holds locked rather than wait, and never fails the call."""
    stop = threading.Event()
    ids = [i.pk for i in items]
    interval = max(0.5, min(10.0, settings.LETHE_STUCK_AFTER / 4))

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    with transaction.atomic():
                        now = timezone.now()
                        jobs = ErasureJob.objects.select_for_update(skip_locked=True).filter(
                            pk=job.pk).values_list("pk", flat=True)
                        ErasureJob.objects.filter(pk__in=list(jobs)).update(heartbeat_at=now)
                        held = ErasureItem.objects.select_for_update(skip_locked=True).filter(
                            pk__in=ids, state=State.IN_FLIGHT).values_list("pk", flat=True)
                        ErasureItem.objects.filter(pk__in=list(held)).update(updated_at=now)
                except DatabaseError:
                    pass
        finally:
            db_connection.close()

    thread = threading.Thread(target=beat, name=f"keepalive-job-{job.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)


def _send(session: ProviderSession, batch: list[ErasureItem]) -> None:
    try:
        with keepalive(batch[0].job, batch):
            outcomes = session.call(session.provider.erase([_target(i) for i in batch]))
    except providers.RateLimited as exc:
        rest = _keep_partial(batch, exc)
        wait = exc.retry_after or 5.0
        until = timezone.now() + timedelta(seconds=wait)
        _release(rest, next_attempt_at=until)
        if wait > MAX_INLINE_WAIT:
            raise _Throttled(until) from exc
        time.sleep(wait)
        return
    except providers.AuthError as exc:
        _release(_keep_partial(batch, exc))
        raise
    except providers.TemporaryError as exc:
        rest = _keep_partial(batch, exc)
        if not exc.sent:
            _retry_or_fail(rest, str(exc))
            return
        outcomes = exc.partial + [Outcome(_target(i), "unknown", str(exc)) for i in rest]
    except providers.ProtocolError as exc:
        # The delete may have happened; the read-back decides.
        rest = _keep_partial(batch, exc)
        outcomes = exc.partial + [Outcome(_target(i), "unknown", str(exc)) for i in rest]
    except providers.ProviderError as exc:
        rest = _keep_partial(batch, exc)
        outcomes = exc.partial + [Outcome(_target(i), "failed", str(exc)) for i in rest]
    record(batch, outcomes)


def _items_in(job: ErasureJob, state: str) -> list[ErasureItem]:
    return list(job.items.filter(state=state).order_by("id"))


def _keep_partial(batch: list[ErasureItem], exc: providers.ProviderError) -> list[ErasureItem]:
    """Record what the provider settled before it stopped; return the rest of the batch."""
    if not exc.partial:
        return batch
    settled = {_key(o.target) for o in exc.partial}
    record([i for i in batch if (i.kind, i.provider_id) in settled], exc.partial)
    return [i for i in batch if (i.kind, i.provider_id) not in settled]


def _release(batch: list[ErasureItem], next_attempt_at: datetime | None = None) -> None:
    """Put items back untouched: nothing reached the provider, so the try does not count."""
    ErasureItem.objects.filter(pk__in=[i.pk for i in batch], state=State.IN_FLIGHT).update(
        state=State.PENDING, attempts=F("attempts") - 1, next_attempt_at=next_attempt_at
    )


def _retry_or_fail(batch: list[ErasureItem], reason: str) -> None:
    now = timezone.now()
    for item in batch:
        if item.attempts >= MAX_ATTEMPTS:
            item.state, item.settled_at = State.FAILED, now
            item.detail = f"Gave up after {item.attempts} tries: {reason}"
        else:
            item.state, item.detail = State.PENDING, f"Will retry: {reason}"
            item.next_attempt_at = now + timedelta(seconds=2 ** item.attempts)
    save(batch, expected=(State.IN_FLIGHT,))


def _wait_for_backoff(job: ErasureJob) -> bool:
    """With nothing claimable, wait for the earliest item in backoff; False when none is."""
    earliest = (
        job.items.filter(state=State.PENDING, next_attempt_at__isnull=False)
        .order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
    )
    if earliest is None:
        return False
    wait = (earliest - timezone.now()).total_seconds()
    if wait > MAX_INLINE_WAIT:
        raise _Throttled(earliest)
    time.sleep(max(wait, 0.0))
    return True


def save(items: list[ErasureItem], expected: tuple[str, ...]) -> None:
    """Write the items' outcome fields, but only over the state the caller read them in: an
    item another worker or a cancel has moved on meanwhile keeps what they wrote. Items
    sharing fields (a batch mostly does) go in one UPDATE, not one CASE per row."""
    now = timezone.now()
    groups: dict[tuple[Any, ...], list[int]] = {}
    for item in items:
        key = (item.state, item.detail, json.dumps(item.response, sort_keys=True),
               item.settled_at, item.next_attempt_at)
        groups.setdefault(key, []).append(item.pk)
    for (state, detail, response, settled_at, next_attempt_at), ids in groups.items():
        ErasureItem.objects.filter(pk__in=ids, state__in=expected).update(
            state=state, detail=detail, response=json.loads(response), settled_at=settled_at,
            next_attempt_at=next_attempt_at, updated_at=now)


_OUTCOME_STATE = {
    "erased": State.ERASED,
    "already_gone": State.ALREADY_GONE,
    "failed": State.FAILED,
    "unknown": State.UNKNOWN,
}


def record(batch: list[ErasureItem], outcomes: list[Outcome]) -> None:
    by_key: dict[Key, Outcome] = {_key(o.target): o for o in outcomes}
    now = timezone.now()
    for item in batch:
        outcome = by_key.get((item.kind, item.provider_id))
        if outcome is None:
            item.state, item.detail = State.UNKNOWN, "The provider gave no outcome for it."
        else:
            item.state = _OUTCOME_STATE[outcome.status]
            item.detail = outcome.detail
            item.response = outcome.response
        item.settled_at = now if item.state in (State.FAILED, State.ALREADY_GONE) else None
    with transaction.atomic():
        save(batch, expected=(State.IN_FLIGHT,))
        settle_mirror([i for i in batch if i.state in (State.ERASED, State.ALREADY_GONE)])


def settle_mirror(items: list[ErasureItem]) -> None:
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


def _read_back(session: ProviderSession, targets: list[Target]) -> dict[Key, str]:
    presence = session.call(session.provider.verify(targets))
    return {_key(p.target): p.state for p in presence}


def _resolve_unknown(session: ProviderSession, items: list[ErasureItem],
                     cancelled: bool = False) -> None:
    found = _read_back(session, [_target(i) for i in items])
    now = timezone.now()
    for item in items:
        state = found.get((item.kind, item.provider_id))
        if state == "gone":
            item.state = State.ERASED
            item.detail = "Confirmed gone on read-back after an uncertain answer; not sent again."
        elif state == "soft_deleted":
            item.state, item.settled_at = State.SOFT_DELETED, now
            item.detail = "Only marked deleted at the provider (soft delete); not erased."
        elif cancelled:
            item.state, item.settled_at = State.SKIPPED, now
            item.detail = "Still present after an uncertain answer; the job was cancelled."
        elif item.attempts < MAX_ATTEMPTS:
            item.state = State.PENDING
            item.detail = "Still present after an uncertain answer; will be sent again."
        else:
            item.state, item.settled_at = State.FAILED, now
            item.detail = f"Still present after {item.attempts} tries."
    with transaction.atomic():
        save(items, expected=(State.UNKNOWN,))
        settle_mirror([i for i in items if i.state == State.ERASED])


_VERIFIED = {
    "gone": (State.VERIFIED, None),
    "soft_deleted": (State.SOFT_DELETED,
                     "Acknowledged, but the provider only marked it deleted (soft delete)."),
}
_STILL_THERE = (State.STILL_THERE, "The provider acknowledged the delete but still returns it.")


def _verify(session: ProviderSession, job: ErasureJob) -> bool:
    """Read back every erased item of the job and record what the provider says now.

    Runs once at the end over what may be the whole job, so it reads only the fields a
    target needs and writes one UPDATE per result, never one per item."""
    rows = list(job.items.filter(state=State.ERASED).order_by("id").values_list(
        "id", "kind", "provider_id", "conversation_provider_id", "character_provider_id"))
    if not rows:
        return True
    targets = [Target(kind=kind, provider_id=pid, conversation_id=conv,  # type: ignore[arg-type]
                      character_id=char) for _, kind, pid, conv, char in rows]
    try:
        found = _read_back(session, targets)
    except providers.ProviderError as exc:
        # Items stay `erased`: acknowledged, not verified. The receipt says exactly that.
        log.warning("verification read-back failed: %s", type(exc).__name__)
        return False
    results: dict[tuple[str, str | None], list[int]] = {}
    for (pk, *_), target in zip(rows, targets, strict=True):
        results.setdefault(_VERIFIED.get(found.get(_key(target), ""), _STILL_THERE),
                           []).append(pk)
    now = timezone.now()
    for (state, detail), ids in results.items():
        fields: dict[str, Any] = {"state": state, "settled_at": now, "updated_at": now}
        if detail is not None:
            fields["detail"] = detail
        # Only over `erased`: an item someone else settled meanwhile keeps what they wrote.
        ErasureItem.objects.filter(pk__in=ids, state=State.ERASED).update(**fields)
    return True


def _settle_uncertain_only(job: ErasureJob) -> None:
    """A cancelled job sends nothing more, but its uncertain items are still read back, and
    what was acknowledged is verified. Items in flight are left to the worker sending them
    unless that worker is gone."""
    stale = timezone.now() - timedelta(seconds=settings.LETHE_STUCK_AFTER)
    if not (job.heartbeat_at and job.heartbeat_at > stale):
        ErasureItem.objects.filter(job=job, state=State.IN_FLIGHT, updated_at__lt=stale).update(
            state=State.UNKNOWN)
    try:
        with ProviderSession(job.connection.open_provider()) as session:
            _resolve_unknown(session, _items_in(job, State.UNKNOWN), cancelled=True)
            if _verify(session, job):
                return
    except providers.ProviderError as exc:
        log.warning("read-back for cancelled job %s failed: %s", job.pk, type(exc).__name__)
    # The sweeper brings it back, but not at every sweep while the provider is away.
    ErasureJob.objects.filter(pk=job.pk).update(
        throttled_until=timezone.now() + timedelta(seconds=RETRY_LATER))


def _pause_for_auth(job: ErasureJob, exc: providers.AuthError) -> None:
    connection = job.connection
    reason = (f"{connection.provider_label} refused the key ending {connection.secret_hint}: "
              f"{exc}. Replace the key in Connections; the job resumes by itself then.")
    Connection.objects.filter(pk=connection.pk).update(
        status=Connection.Status.INVALID, last_error=reason
    )
    with transaction.atomic():
        locked = ErasureJob.objects.select_for_update().get(pk=job.pk)
        try:
            locked.status = advance(locked.status, Event.PAUSE)
        except IllegalTransition:
            return
        locked.paused_for_auth = True
        locked.last_error = reason
        locked.save(update_fields=["status", "paused_for_auth", "last_error"])


def finish_if_settled(job: ErasureJob) -> ErasureJob:
    """The last worker out finishes the job; open items keep it running."""
    with transaction.atomic():
        locked = ErasureJob.objects.select_for_update().get(pk=job.pk)
        if (locked.status == ErasureJob.Status.RUNNING
                and not locked.items.filter(state__in=ErasureItem.OPEN).exists()):
            locked.status = advance(locked.status, Event.FINISH)
            locked.finished_at = timezone.now()
            locked.throttled_until = None
            locked.save(update_fields=["status", "finished_at", "throttled_until"])
            audit.record(None, audit.Action.ERASURE_FINISHED, locked, dry_run=locked.dry_run,
                         outcomes={s: n for s, n in locked.counts().items() if n})
            notify.announce(locked)  # sent by a worker after commit, once per event
    locked.connection = job.connection
    return locked
