"""The provider pool's connections take their free locks without yielding to the event
loop, so a request waits behind no other task on its way to the wire (providers/pool.py);
a lock that is held still keeps a second task out."""

from __future__ import annotations

import asyncio
from typing import Any

import httpcore

from providers.egress import transport_for
from providers.fakes.convai import ConvaiFake
from providers.hosts import HostRules
from providers.pool import FreeLock, Pool


class Ticks:
    """A task that counts its turns: each time another task yields to the event loop while
    it is ready, it gets one."""

    def __init__(self) -> None:
        self.count = 0

    async def run(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)


class _Stream(httpcore.AsyncNetworkStream):
    """httpcore's stream, noting the turn count at each write and after each read."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, seen: list[int],
                 ticks: Ticks) -> None:
        self.inner, self.seen, self.ticks = inner, seen, ticks
        self.read_at = 0

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.seen.append(self.ticks.count)
        await self.inner.write(buffer, timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self.inner.read(max_bytes, timeout)
        self.read_at = self.ticks.count
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    """httpcore's own backend; its one connection's stream is ``stream``."""

    def __init__(self, ticks: Ticks) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.ticks = ticks
        self.writes: list[int] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None
                          ) -> httpcore.AsyncNetworkStream:
        stream = await self.inner.connect_tcp(host, port, timeout, local_address,
                                              socket_options)
        self.stream = _Stream(stream, self.writes, self.ticks)
        return self.stream

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def turns_given_away(pool_class: type[httpcore.AsyncConnectionPool]) -> list[tuple[int, int]]:
    """For each of three requests on one kept-alive connection, how many turns the event
    loop gave another ready task: between the request's start and its first write, and
    between its answer's arrival and the request's end."""
    fake = ConvaiFake(seed=1, characters=1, sessions=1)

    async def main(url: str) -> list[tuple[int, int]]:
        ticks = Ticks()
        backend = _Backend(ticks)
        ticker = asyncio.create_task(ticks.run())
        turns = []
        async with pool_class(ssl_context=None, keepalive_expiry=5.0,
                              network_backend=backend) as pool:
            for _ in range(3):
                before, written = ticks.count, len(backend.writes)
                await pool.request("POST", f"{url}/character/list", content=b"{}")
                turns.append((backend.writes[written] - before,
                              ticks.count - backend.stream.read_at))
        ticker.cancel()
        return turns

    with fake.serve() as server:
        return asyncio.run(main(server.url))


def test_a_request_on_a_kept_connection_takes_its_locks_without_a_turn() -> None:
    # The first request connects, with real waits; the next two reuse its connection.
    # Before its write and after its answer, no other task runs.
    assert turns_given_away(Pool)[1:] == [(0, 0), (0, 0)]


def test_httpcores_own_pool_still_gives_turns_away() -> None:
    """What providers.pool is for: two free locks before the write, one after the
    answer. If this fails, httpcore changed: see whether the pool is still needed."""
    assert turns_given_away(httpcore.AsyncConnectionPool)[1:] == [(2, 1), (2, 1)]


def test_every_provider_client_goes_through_the_pool() -> None:
    transport = transport_for("https://api.convai.com", HostRules(("api.convai.com",)),
                              "Convai")
    assert isinstance(transport._pool, Pool)  # type: ignore[attr-defined]


def test_a_held_free_lock_still_keeps_a_second_task_out() -> None:
    lock = FreeLock()
    order: list[str] = []

    async def hold() -> None:
        async with lock:
            order.append("first in")
            await asyncio.sleep(0.01)
            order.append("first out")

    async def wait() -> None:
        await asyncio.sleep(0)
        async with lock:
            order.append("second in")

    async def main() -> None:
        await asyncio.gather(hold(), wait())

    asyncio.run(main())
    assert order == ["first in", "first out", "second in"]
