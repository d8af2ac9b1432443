"""A fake provider on loopback in its own process, so its work never shares our GIL.

    python -m bench.fakeserver characterai --characters 20 --chats 100 --turns 100 \
        --latency 0.02 [--rate-limit 10]

Prints ``URL <address>`` when ready, then answers lines on stdin: ``stats`` (a JSON line
with requests received and 429s sent), ``reset`` (zero the counters), ``quit``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from providers.fakes.base import FakeProvider, FakeResponse
from providers.fakes.characterai import CharacterAIFake
from providers.fakes.convai import ConvaiFake


def counting(cls: type[FakeProvider]) -> type[FakeProvider]:
    class Counting(cls):  # type: ignore[valid-type,misc]
        throttled = 0

        def _too_many(self) -> FakeResponse:
            self.throttled += 1
            return super()._too_many()  # type: ignore[no-any-return]

    return Counting


def build(args: argparse.Namespace) -> Any:
    if args.provider == "characterai":
        return counting(CharacterAIFake)(
            characters=args.characters, chats=args.chats, turns=(args.turns, args.turns),
            archived=0, pinned=0.0, latency=args.latency, rate_limit=args.rate_limit)
    return counting(ConvaiFake)(
        characters=args.characters, sessions=args.chats, turns=(1, 2),
        latency=args.latency, rate_limit=args.rate_limit)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("provider", choices=["characterai", "convai"])
    parser.add_argument("--characters", type=int, default=20)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=None)
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
                                  "ids": ids, "deletes": sum(fake.deletes.values())}),
                      flush=True)
        elif command == "reset":
            fake.clear_faults()
            fake.throttled = 0
            print("{}", flush=True)
        elif command == "quit":
            break
    server.stop()


if __name__ == "__main__":
    main()
