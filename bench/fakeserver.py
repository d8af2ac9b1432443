"""A fake provider on loopback in its own process, so its work never shares our GIL.

It answers with the fake the tests use (providers/fakes), behind a small HTTP/1.1 server
on one asyncio loop: the tests' threaded stdlib server spent about 750 µs of processor
time a request (header parsing, a thread per connection waking for each answer), a third
of a core during a sync on the 2-core machine, which the bench then counted as Lethe's.

    python -m bench.fakeserver characterai --characters 20 --chats 100 --turns 100 \
        --latency 0.02 [--rate-limit 10 [--retry-after none]] [--slow-above 30 --slowdown 0.002]

Prints ``URL <address>`` when ready, then answers lines on stdin: ``stats`` (a JSON line
with requests received, 429s sent and processor time spent since the last reset),
``reset`` (zero the counters), ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import selectors
import socket
import sys
import threading
import time
from http import HTTPStatus
from typing import Any

from providers.fakes.base import FakeProvider, FakeResponse
from providers.fakes.characterai import CharacterAIFake
from providers.fakes.convai import ConvaiFake


def counting(cls: type[FakeProvider]) -> type[FakeProvider]:
    """The fake, counting its 429s (and when each was sent) and cheap per request: an
    answer to a read is built once and served again until the data changes, so the bench
    measures Lethe rather than the fake rendering the same JSON page after page."""

    class Counting(cls):  # type: ignore[valid-type,misc]
        throttled = 0
        since = time.monotonic()
        cpu_since = 0.0  # processor time at the last reset: building the data is not served

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.throttled_at: list[float] = []
            self._answers: dict[tuple[str, str, bytes, str], FakeResponse] = {}
            self._asked = threading.local()
            self._version = 0

        def _too_many(self) -> FakeResponse:
            self.throttled += 1
            self.throttled_at.append(time.monotonic() - self.since)
            return super()._too_many()  # type: ignore[no-any-return]

        def handle(self, method: str, path: str, headers: Any, body: bytes,
                   arrived: float | None = None) -> FakeResponse:
            # The whole request, query included: the base hands routes the path only.
            # (Header names arrive in lower case: see `serve`.)
            credentials = headers.get("authorization", "") + headers.get(
                "convai-api-key", "")
            self._asked.key = (method, path, body, credentials)
            return super().handle(method, path, headers, body, arrived)  # type: ignore[no-any-return]

        def route(self, method: str, path: str, headers: Any, body: bytes) -> FakeResponse:
            key = self._asked.key
            answer = self._answers.get(key)
            if answer is not None:
                return answer
            version = self._version
            answer = super().route(method, path, headers, body)
            # Only the answer of a request that changed nothing is a read worth keeping.
            if answer.status == 200 and version == self._version:
                self._answers[key] = answer
            return answer  # type: ignore[no-any-return]

        def changed(self) -> None:
            self._version += 1
            self._answers.clear()
            super().changed()

    return Counting


def _head(answer: FakeResponse) -> bytes:
    reason = HTTPStatus(answer.status).phrase
    lines = [f"HTTP/1.1 {answer.status} {reason}",
             *(f"{k}: {v}" for k, v in answer.headers.items()),
             f"Content-Length: {len(answer.body)}", "", ""]
    return "\r\n".join(lines).encode("latin-1")


async def _connection(fake: Any, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
    """One keep-alive connection: requests answered in turn, each ``latency`` after it
    arrived (the fake's own rule, `answer_wait`), head and body in one write."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            arrived = time.monotonic()
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            body = await reader.readexactly(length) if length else b""
            answer = fake.handle(method, target, headers, body, arrived)
            if (wait := fake.answer_wait(arrived)) > 0:
                await asyncio.sleep(wait)
            writer.write(_head(answer) + answer.body)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def serve(fake: Any) -> tuple[str, threading.Thread]:
    """The fake on a free loopback port, its loop in a daemon thread: (URL, thread)."""
    ready = threading.Event()
    where: list[str] = []

    async def run() -> None:
        server = await asyncio.start_server(
            lambda r, w: _connection(fake, r, w), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        where.append(f"http://127.0.0.1:{port}")
        ready.set()
        async with server:
            await server.serve_forever()

    def loop() -> None:
        # select(), not epoll: epoll waits in whole milliseconds, rounded up, so every
        # answer left up to a millisecond late (0.5 ms on average, 2.5 % of the 20 ms the
        # bench's floor counts); select() waits to the microsecond, and there are few sockets.
        runner = asyncio.SelectorEventLoop(selectors.SelectSelector())
        runner.run_until_complete(run())

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    ready.wait()
    return where[0], thread


def build(args: argparse.Namespace) -> Any:
    retry_after = None if args.retry_after == "none" else float(args.retry_after)
    if args.provider == "characterai":
        fake = counting(CharacterAIFake)(
            characters=args.characters, chats=args.chats, turns=(args.turns, args.turns),
            archived=0, pinned=0.0, latency=args.latency, rate_limit=args.rate_limit,
            retry_after=retry_after)
    else:
        fake = counting(ConvaiFake)(
            characters=args.characters, sessions=args.chats, turns=(1, 2),
            latency=args.latency, rate_limit=args.rate_limit, retry_after=retry_after)
    fake.slow_above = args.slow_above
    fake.slowdown = args.slowdown
    return fake


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("provider", choices=["characterai", "convai"])
    parser.add_argument("--characters", type=int, default=20)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=None)
    parser.add_argument("--retry-after", default="1", help="seconds, or none")
    parser.add_argument("--slow-above", type=float, default=None)
    parser.add_argument("--slowdown", type=float, default=0.0)
    args = parser.parse_args()
    fake = build(args)
    url, _ = serve(fake)
    secrets, options = fake.client_config(url)
    print("URL", json.dumps({"secrets": secrets, "options": options}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            with fake.lock:
                total = sum(fake.requests.values())
                ids = ([[c.id, s] for c in fake.characters.values() for s in c.sessions]
                       if args.provider == "convai" else [])
                print(json.dumps({"requests": total, "throttled": fake.throttled,
                                  "cpu_seconds": time.process_time() - fake.cpu_since,
                                  "throttled_at": fake.throttled_at,
                                  "ids": ids, "deletes": sum(fake.deletes.values())}),
                      flush=True)
        elif command == "reset":
            fake.clear_faults()
            fake.throttled = 0
            fake.throttled_at = []
            fake.since = time.monotonic()
            fake.cpu_since = time.process_time()
            print("{}", flush=True)
        elif command == "quit":
            break


if __name__ == "__main__":
    main()
