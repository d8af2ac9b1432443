"""The reading half of a sync: a thread with its own event loop that drives the provider with
several requests in flight and hands what it read to the writer through a small bounded
queue, as typed messages (below), so memory stays flat however much there is.

The reader never touches the database; the writer never speaks to the provider.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import providers
from providers import records

from ..models import MirrorState
from .storable import Cleaner

# A conversation the provider reports no last-message time for may have grown only if it
# started this long before the previous sync.
RECENT = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class Known:
    """What the mirror holds about a conversation before this run."""

    pk: int
    last_message_at: datetime | None
    mirror_state: str
    # Incremental runs only: where reading a grown conversation may stop.
    newest_id: str | None = None
    newest_position: int = 0
    title: str = ""
    # Provider ids of its messages erased through Lethe: never mirrored again.
    erased: frozenset[str] = frozenset()


# -- what the reader sends the writer, in this order: Listed, then one of WholeChat,
# NewestOfChat or Vanished per conversation read, then Finished (or Failed at any point).


@dataclass(frozen=True, slots=True)
class Listed:
    account: records.Account | None
    characters: list[records.Character]
    conversations: list[records.Conversation]


@dataclass(frozen=True, slots=True)
class WholeChat:
    """Every message of the conversation, oldest first."""

    provider_id: str
    messages: list[records.Message]


@dataclass(frozen=True, slots=True)
class NewestOfChat:
    """The messages from the mirror's newest one on, positions counted from it."""

    provider_id: str
    messages: list[records.Message]


@dataclass(frozen=True, slots=True)
class Vanished:
    """Listed a moment ago, gone when its messages were asked for."""

    provider_id: str


@dataclass(frozen=True, slots=True)
class Finished:
    notes: list[str]


@dataclass(frozen=True, slots=True)
class Failed:
    error: BaseException


Item = Listed | WholeChat | NewestOfChat | Vanished | Finished


def needs_messages(conv: records.Conversation, known: dict[str, Known],
                   since: datetime | None) -> bool:
    """Whether a listed conversation may have changed since the last sync."""
    mirrored = known.get(conv.provider_id)
    if mirrored is not None and mirrored.mirror_state == MirrorState.ERASED:
        return False  # erased through Lethe: what the provider may still hold stays out
    if mirrored is None or since is None:
        return True
    if conv.last_message_at is not None:
        return conv.last_message_at != mirrored.last_message_at
    started = conv.started_at or since
    return started >= since - RECENT


@dataclass(slots=True)
class Progress:
    """How far the reader has come, read from the heartbeat thread for the progress shown
    while a sync runs (plain ints: a torn read is at worst one beat behind)."""

    characters: int = 0
    conversations: int = 0
    to_read: int = 0
    read: int = 0
    messages: int = 0


class _Stopped(Exception):
    """The writer gave up; the reader stops quietly."""


class Reader(threading.Thread):
    """Reads the listing, then the messages of each stale chat, ``in_flight`` at a time."""

    def __init__(self, provider: providers.Provider, known: dict[str, Known],
                 since: datetime | None, in_flight: int,
                 progress: Progress | None = None) -> None:
        super().__init__(name="lethe-sync-reader", daemon=True)
        self.progress = progress or Progress()
        self.provider = provider
        self.known = known
        self.since = since
        self.in_flight = in_flight
        self.out: queue.Queue[Item | Failed] = queue.Queue(maxsize=2 * in_flight)
        self.stop = threading.Event()
        # What the writer gets is storable; the provider is still asked with its own ids.
        self.clean = Cleaner()

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except _Stopped:
            return
        except BaseException as exc:  # handed to the writer, which decides what it means
            self._put_blocking(Failed(exc))

    def _put_blocking(self, item: Failed) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    async def _put(self, item: Item) -> None:
        # Back-pressure without blocking the loop: the writer sets the pace.
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                self.out.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.002)

    async def _main(self) -> None:
        provider = self.provider
        async with provider:
            account = await provider.check()
            characters = [c async for c in provider.characters()]
            self.progress.characters = len(characters)
            listed: dict[int, list[records.Conversation]] = {}

            async def list_one(index: int, character: records.Character) -> None:
                listed[index] = [c async for c in provider.conversations(character)]
                self.progress.conversations += len(listed[index])

            await self._each(enumerate(characters), list_one)
            conversations = [c for i in range(len(characters)) for c in listed[i]]
            clean = self.clean.record
            await self._put(Listed(account and clean(account), [clean(c) for c in characters],
                                   [clean(c) for c in conversations]))
            # A provider may list one chat twice (say, under two characters): read it once.
            unique = {c.provider_id: c for c in conversations}.values()
            stale = [c for c in unique if needs_messages(c, self.known, self.since)]
            self.progress.to_read = len(stale)
            await self._each(((c,) for c in stale), self._read_one)
        notes = [*provider.notes, self.clean.note()]
        await self._put(Finished([n for n in dict.fromkeys(notes) if n]))

    async def _read_one(self, conv: records.Conversation) -> None:
        mirrored = self.known.get(conv.provider_id)
        try:
            if self.since is not None and mirrored and mirrored.newest_id:
                newest = await self.provider.newest_messages(conv, mirrored.newest_id)
                if newest is not None:
                    self._done(len(newest))
                    await self._put(NewestOfChat(self.clean.text(conv.provider_id),
                                                 [self.clean.record(m) for m in newest]))
                    return
            msgs = [m async for m in self.provider.messages(conv)]
        except providers.NotFound:
            # Listed a moment ago, gone now: deleted elsewhere while we synced.
            self._done(0)
            await self._put(Vanished(self.clean.text(conv.provider_id)))
            return
        self._done(len(msgs))
        await self._put(WholeChat(self.clean.text(conv.provider_id),
                                  [self.clean.record(m) for m in msgs]))

    def _done(self, messages: int) -> None:
        self.progress.read += 1
        self.progress.messages += messages

    async def _each(self, jobs: Iterable[tuple[Any, ...]],
                    call: Callable[..., Awaitable[None]]) -> None:
        """``call(*job)`` for every job, ``in_flight`` at a time; the first error wins."""
        shared = iter(jobs)

        async def worker() -> None:
            # One shared iterator: each worker takes the next job when it is free.
            for job in shared:
                await call(*job)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.in_flight):
                    group.create_task(worker())
        except BaseExceptionGroup as grouped:
            raise _first(grouped) from None

    def items(self) -> Iterator[Item]:
        """What was read, in order, up to and including Finished; raises what failed."""
        while True:
            try:
                item = self.out.get(timeout=0.5)
            except queue.Empty:
                if not self.is_alive() and self.out.empty():
                    raise RuntimeError("the sync reader stopped without a word") from None
                continue
            if isinstance(item, Failed):
                raise item.error
            yield item
            if isinstance(item, Finished):
                return

    def halt(self) -> None:
        self.stop.set()
        self.join(timeout=30)


def _first(grouped: BaseExceptionGroup[Any]) -> BaseException:
    """The exception a TaskGroup failed with, preferring a provider's own error."""
    flat: list[BaseException] = []

    def walk(group: BaseExceptionGroup[Any]) -> None:
        for exc in group.exceptions:
            if isinstance(exc, BaseExceptionGroup):
                walk(exc)
            else:
                flat.append(exc)

    walk(grouped)
    real = [e for e in flat if not isinstance(e, _Stopped | asyncio.CancelledError)]
    return next((e for e in real if isinstance(e, providers.ProviderError)),
                real[0] if real else flat[0])
