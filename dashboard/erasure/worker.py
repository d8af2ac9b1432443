"""Work an erasure job: claim items, send them, record each answer (`outcomes`), read back,
verify. Several workers may work one job: items are claimed under row locks (SKIP LOCKED),
and a claimed item is in flight until its answer is recorded.

Waits the provider asks for are slept through when short; longer ones are written into the
items' next-attempt time and the job's `throttled_until`, and the sweeper requeues the job.
The erasure invariants this keeps are listed in docs/architecture.md.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

import providers
from providers.records import Outcome

from ..lib import heartbeat, queue
from ..lib.aio import ProviderSession
from ..models import Connection, ErasureItem, ErasureJob, ProviderTraffic
from ..models.jobstate import Event
from ..team import audit
from ..team.roles import Role, at_least
from . import notify, presence
from .freeze import mark_protected
from .outcomes import (
    MAX_ATTEMPTS,
    key_of,
    record,
    resolve_unknown,
    save,
    target_of,
    verify,
)

log = logging.getLogger(__name__)

State = ErasureItem.State
MAX_INLINE_WAIT = 30.0
RETRY_LATER = 30.0  # seconds before a job whose read-back failed is tried again
# Answers that mean the provider as a whole is away (refused, gateway, unavailable): they say
# nothing about the items, so they do not use up the items' tries.
UNAVAILABLE = {None, 502, 503, 504}
# What a cancelled job still reads back: uncertain sends, and acknowledged ones not verified
# (the sweeper brings it back for these; an item in flight is its worker's until stuck).
TO_READ_BACK = Q(state=State.UNKNOWN) | Q(state=State.ERASED, settled_at__isnull=True)


def enqueue(job_id: int) -> None:
    """Queue the job for LETHE_ERASE_WORKERS workers; they share its items by row locks (and
    any more that arrive leave at once: see `presence.join`)."""
    ErasureJob.objects.filter(pk=job_id).update(queued_at=timezone.now())
    queue.send(queue.ERASE, job_id, copies=settings.LETHE_ERASE_WORKERS)


class _Throttled(Exception):
    def __init__(self, until: datetime, reason: str) -> None:
        self.until = until
        self.reason = reason


def work_job(job_id: int) -> ErasureJob:
    """Work a job until no item is open, the job is paused or cancelled, the provider asks
    for a long wait, or this worker's slice of time is up (LETHE_TASK_SLICE; the sweeper
    then brings the job back). Safe to call any number of times, from any number of
    workers: at most LETHE_ERASE_WORKERS of them work a job at once."""
    job = ErasureJob.objects.select_related("connection").get(pk=job_id)
    if job.connection is None:
        return _without_connection(job)
    if job.status == ErasureJob.Status.CANCELLED:
        if job.items.filter(Q(state=State.IN_FLIGHT) | TO_READ_BACK).exists():
            _settle_uncertain_only(job)
        return job
    if not _requester_may_still_act(job):
        job.refresh_from_db()
        return job
    lease = presence.join(job)
    if lease is None:
        return job
    try:
        job.refresh_from_db()
        if job.dry_run:
            job.items.filter(state=State.PENDING).update(
                state=State.WOULD_ERASE, detail="Dry run: nothing was sent.",
                settled_at=timezone.now())
            return finish_if_settled(job)
        # Beating all along, read-backs included: a worker alive is never taken for dead.
        with presence.keepalive(job.pk, lease):
            _work_guarded(job, lease)
        return finish_if_settled(job)
    finally:
        presence.leave(lease)


def _work_guarded(job: ErasureJob, lease: int) -> None:
    """Work the job; record why it stopped early, in plain words, and when to try again."""
    now = timezone.now()
    try:
        _work(job, lease)
    except providers.AuthError as exc:
        _pause_for_auth(job, exc)
    except _Throttled as exc:
        _wait(job, exc.until, exc.reason)
    except providers.RateLimited as exc:
        until = now + timedelta(seconds=exc.retry_after or RETRY_LATER)
        _wait(job, until, f"{job.provider_label} asked us to wait until {_at(until)}.")
    except providers.ProviderError as exc:
        # The provider is away, or a read-back failed (nothing is sent without it): the
        # items wait and the sweeper brings the job back once `until` has passed.
        until = now + timedelta(seconds=RETRY_LATER)
        _wait(job, until, f"{_unreachable(exc)} Trying again at {_at(until)}.")


def _at(moment: datetime) -> str:
    """A time to wait for, in words: with its date unless it is today (UTC)."""
    if moment.date() == timezone.now().date():
        return f"{moment:%H:%M:%S} UTC"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _unreachable(exc: providers.ProviderError) -> str:
    if isinstance(exc, providers.TemporaryError) and exc.status is None:
        return f"{exc} (the provider could not be reached)."
    return exc.sentence


def _wait(job: ErasureJob, until: datetime, reason: str) -> None:
    ErasureJob.objects.filter(pk=job.pk).update(throttled_until=until, last_error=reason)


def _without_connection(job: ErasureJob) -> ErasureJob:
    """A job whose connection was removed can send and read back nothing more: what it
    still had open is settled for the receipt to say so (removal waits for jobs that may be
    sending, so this is the rare leftover: an item queued again just as it went)."""
    now = timezone.now()
    job.items.filter(state=State.PENDING).update(
        state=State.SKIPPED, settled_at=now, detail="The connection was removed; not sent.")
    job.items.filter(state__in=[State.IN_FLIGHT, State.UNKNOWN]).update(
        state=State.FAILED, settled_at=now,
        detail="The connection was removed before the outcome was known.")
    if job.status in (ErasureJob.Status.QUEUED, ErasureJob.Status.RUNNING):
        job = ErasureJob.objects.transition(job.pk, Event.FINISH, finished_at=now,
                                            throttled_until=None)
    return job


def _requester_may_still_act(job: ErasureJob) -> bool:
    """Checked before any secret is decrypted: access or role may have been taken away
    since the job was confirmed. Then the job pauses and says why; nothing is sent."""
    requester = job.requested_by
    if (Connection.objects.visible_to(requester).filter(pk=job.live_connection().pk).exists()
            and at_least(requester, Role.OPERATOR)):
        return True
    ErasureJob.objects.transition_if_allowed(
        job.pk, Event.PAUSE,
        last_error=(f"{requester.get_username()} no longer has access to this connection (or "
                    "the operator role); nothing was sent. Someone who has can cancel it, or "
                    "it can be resumed once access is back."))
    return False


def _still_running(job: ErasureJob, lease: int) -> bool:
    """Heartbeat, and stop when someone paused or cancelled the job meanwhile."""
    presence.beat(job.pk, lease)
    return ErasureJob.objects.filter(pk=job.pk, status=ErasureJob.Status.RUNNING).exists()


def claim(job: ErasureJob, size: int) -> list[ErasureItem]:
    """Take up to `size` due pending items; other workers skip the locked rows. Empty only
    when nothing is left to take."""
    while True:
        with transaction.atomic():
            now = timezone.now()
            if not ErasureJob.objects.filter(pk=job.pk,
                                             status=ErasureJob.Status.RUNNING).exists():
                return []  # paused or cancelled since the last look: claim nothing more
            ids = list(
                job.items.select_for_update(skip_locked=True)
                .filter(state=State.PENDING)
                .exclude(next_attempt_at__gt=now)
                .order_by("id")
                .values_list("id", flat=True)[:size]
            )
            if not ids:
                return []
            # Put on the keep-list since the freeze (in the cancel window, say): not sent.
            mark_protected(ErasureItem.objects.filter(pk__in=ids))
            # Conditional on still being pending: a backend without row locks cannot
            # double-claim.
            ErasureItem.objects.filter(pk__in=ids, state=State.PENDING).update(
                state=State.IN_FLIGHT, attempts=F("attempts") + 1, updated_at=now
            )
            claimed = list(ErasureItem.objects.filter(pk__in=ids, state=State.IN_FLIGHT)
                           .order_by("id"))
        if claimed:
            return claimed


def _work(job: ErasureJob, lease: int) -> None:
    slice_ends = time.monotonic() + settings.LETHE_TASK_SLICE
    connection = job.live_connection()
    with ProviderSession(connection.open_provider()) as session:
        try:
            _work_slice(session, job, lease, slice_ends)
        finally:
            _count(session)
            connection.remember_pace(session.provider.budget)


def _work_slice(session: ProviderSession, job: ErasureJob, lease: int,
                slice_ends: float) -> None:
    size = settings.LETHE_ERASE_BATCH or session.provider.capabilities.max_batch
    while _still_running(job, lease) and time.monotonic() < slice_ends:
        # Uncertain outcomes first: read back before anything could be sent again.
        unknown = _items_in(job, State.UNKNOWN)
        if unknown:
            resolve_unknown(session, unknown)
            continue
        batch = claim(job, size)
        if not batch:
            if not _wait_for_backoff(job):
                break
            continue
        _send(session, batch, lease)
        _count(session)
    if job.items.filter(state=State.IN_FLIGHT).exists():
        # Another worker is still sending: it reads back everything acknowledged once it
        # is done (or, if it died, whoever resumes the job does), so the job's last read
        # and its one big update happen once, at the end, not once per worker.
        return
    _verify_or_wait(session, job)


def _count(session: ProviderSession) -> None:
    """Add what was sent since the last count to the traffic /metrics serves."""
    provider = session.provider
    ProviderTraffic.add(provider.name, ProviderTraffic.Kind.ERASE, provider.meter.take())


def _verify_or_wait(session: ProviderSession, job: ErasureJob) -> None:
    """Verify what was acknowledged. A failed read-back is tried again later; after
    LETHE_VERIFY_TRIES in a row the items are settled as acknowledged but not verified,
    which is what the receipt then says."""
    try:
        verify(session, job)
    except providers.ProviderError as exc:
        failures = job.verify_failures + 1
        ErasureJob.objects.filter(pk=job.pk).update(verify_failures=failures)
        if failures < settings.LETHE_VERIFY_TRIES:
            raise
        ErasureItem.objects.filter(job=job, state=State.ERASED, settled_at__isnull=True
                                   ).update(settled_at=timezone.now(), detail=(
                                       "Acknowledged by the provider; the read-back to "
                                       f"verify it failed {failures} times ({exc})."))
        return
    if job.verify_failures:
        ErasureJob.objects.filter(pk=job.pk).update(verify_failures=0)


def _send(session: ProviderSession, batch: list[ErasureItem], lease: int) -> None:
    try:
        with presence.keepalive(batch[0].job_id, lease, [i.pk for i in batch]):
            outcomes = session.call(session.provider.erase([target_of(i) for i in batch]))
    except providers.RateLimited as exc:
        rest = _keep_partial(batch, exc)
        wait = exc.retry_after or 5.0
        until = timezone.now() + timedelta(seconds=wait)
        _release(rest, next_attempt_at=until)
        if wait > MAX_INLINE_WAIT:
            raise _Throttled(until, f"{session.provider.label} asked us to wait until "
                                    f"{_at(until)}.") from exc
        time.sleep(wait)
        return
    except providers.AuthError as exc:
        _release(_keep_partial(batch, exc))
        raise
    except providers.TemporaryError as exc:
        rest = _keep_partial(batch, exc)
        if not exc.sent and exc.status in UNAVAILABLE:
            # The provider is away, not these items: they go back untouched and the job
            # waits for it (see _work_guarded), however long the outage lasts.
            _release(rest)
            raise
        if not exc.sent:
            _retry_or_fail(rest, str(exc))
            return
        outcomes = exc.partial + [Outcome(target_of(i), "unknown", str(exc)) for i in rest]
    except providers.ProtocolError as exc:
        # The delete may have happened; the read-back decides.
        rest = _keep_partial(batch, exc)
        outcomes = exc.partial + [Outcome(target_of(i), "unknown", str(exc)) for i in rest]
    except providers.ProviderError as exc:
        rest = _keep_partial(batch, exc)
        outcomes = exc.partial + [Outcome(target_of(i), "failed", str(exc)) for i in rest]
    record(batch, outcomes)


def _items_in(job: ErasureJob, state: str) -> list[ErasureItem]:
    return list(job.items.filter(state=state).order_by("id"))


def _keep_partial(batch: list[ErasureItem], exc: providers.ProviderError) -> list[ErasureItem]:
    """Record what the provider settled before it stopped; return the rest of the batch."""
    if not exc.partial:
        return batch
    settled = {key_of(o.target) for o in exc.partial}
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
        raise _Throttled(earliest, f"Items wait to be tried again at {_at(earliest)}.")
    time.sleep(max(wait, 0.0))
    return True


def _settle_uncertain_only(job: ErasureJob) -> None:
    """A cancelled job sends nothing more, but its uncertain items are still read back, and
    what was acknowledged is verified. Items in flight are left to the worker sending them
    unless that worker is gone."""
    stale = heartbeat.silent_since()
    if not (job.heartbeat_at and job.heartbeat_at > stale):
        ErasureItem.objects.filter(job=job, state=State.IN_FLIGHT, updated_at__lt=stale).update(
            state=State.UNKNOWN)
    try:
        with ProviderSession(job.live_connection().open_provider()) as session:
            try:
                resolve_unknown(session, _items_in(job, State.UNKNOWN), cancelled=True)
                verify(session, job)
            finally:
                _count(session)
            return
    except providers.ProviderError as exc:
        log.warning("read-back for cancelled job %s failed: %s", job.pk, type(exc).__name__)
    # The sweeper brings it back, but not at every sweep while the provider is away.
    ErasureJob.objects.filter(pk=job.pk).update(
        throttled_until=timezone.now() + timedelta(seconds=RETRY_LATER))


def _pause_for_auth(job: ErasureJob, exc: providers.AuthError) -> None:
    connection = job.live_connection()
    reason = (f"{connection.provider_label} refused the key ending {connection.secret_hint}: "
              f"{exc.sentence} Replace the key in Connections; the job resumes by itself "
              "then.")
    Connection.objects.filter(pk=connection.pk).update(
        status=Connection.Status.INVALID, last_error=reason
    )
    ErasureJob.objects.transition_if_allowed(job.pk, Event.PAUSE, paused_for_auth=True,
                                             last_error=reason)


def unsettled(job: ErasureJob) -> bool:
    """Whether the job still has work: an item not sent or answered yet, or acknowledged
    but neither verified nor given up on."""
    return job.items.filter(Q(state__in=ErasureItem.OPEN)
                            | Q(state=State.ERASED, settled_at__isnull=True)).exists()


def finish_if_settled(job: ErasureJob) -> ErasureJob:
    """Finish the job once every item is settled, verification included: decided once,
    under the job's lock, by whoever settles the last item; the audit entry and the
    notification are written then."""
    with transaction.atomic():
        locked = ErasureJob.objects.select_for_update().get(pk=job.pk)
        if (locked.status in (ErasureJob.Status.RUNNING, ErasureJob.Status.QUEUED)
                and not unsettled(locked)):
            locked = ErasureJob.objects.transition(job.pk, Event.FINISH,
                                                   finished_at=timezone.now(),
                                                   throttled_until=None)
            audit.record(None, audit.Action.ERASURE_FINISHED, locked, dry_run=locked.dry_run,
                         outcomes={s: n for s, n in locked.counts().items() if n})
            notify.announce(locked)  # sent by a worker after commit, once per event
    locked.connection = job.connection
    return locked
