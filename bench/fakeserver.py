"""A fake provider on loopback in its own process, so its work never shares our GIL.

    python -m bench.fakeserver characterai --characters 20 --chats 100 --turns 100 \
        --latency 0.02 [--rate-limit 10 [--retry-after none]] [--slow-above 30 --slowdown 0.002]

Prints ``URL <address>`` when ready, then answers lines on stdin: ``stats`` (a JSON line
with requests received and 429s sent), ``reset`` (zero the counters), ``quit``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
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
            credentials = headers.get("Authorization", "") + headers.get(
                "CONVAI-API-KEY", "")
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
    server = fake.serve()
    secrets, options = fake.client_config(server.url)
    print("URL", json.dumps({"secrets": secrets, "options": options}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            with fake.lock:
                total = sum(fake.requests.values())
                ids = ([[c.id, s] for c in fake.characters.values() for s in c.sessions]
                       if args.provider == "convai" else [])
                print(json.dumps({"requests": total, "throttled": fake.throttled,
                                  "cpu_seconds": time.process_time(),
                                  "throttled_at": fake.throttled_at,
                                  "ids": ids, "deletes": sum(fake.deletes.values())}),
                      flush=True)
        elif command == "reset":
            fake.clear_faults()
            fake.throttled = 0
            fake.throttled_at = []
            fake.since = time.monotonic()
            print("{}", flush=True)
        elif command == "quit":
            break
    server.stop()


if __name__ == "__main__":
    main()
