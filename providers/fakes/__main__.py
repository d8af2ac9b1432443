"""Run a fake provider in the foreground on a real port until SIGINT or SIGTERM.

    python -m providers.fakes convai --port 8101 --latency 0.02 --seed 1

With ``--state FILE`` the data outlives the process: it is loaded from FILE when that
exists (instead of seeding) and written back after every change.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from .convai import DEMO_KEY, EPOCH, ConvaiFake


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m providers.fakes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("provider", choices=["convai"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--characters", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=12, help="per character")
    parser.add_argument("--key", action="append", dest="keys",
                        help=f"a valid API key (repeatable; default {DEMO_KEY})")
    parser.add_argument("--rate-limit", type=float, default=None,
                        help="requests per second before answering 429")
    parser.add_argument("--plan-gated-delete", action="store_true",
                        help="refuse deletes as a plan without the delete API would")
    parser.add_argument("--epoch", action="store_true",
                        help=f"date seeded histories back from {EPOCH:%Y-%m-%d}, not from now")
    parser.add_argument("--state", type=Path, default=None, metavar="FILE",
                        help="load the data from FILE if it exists, else seed and write it; "
                             "save it there after every change")
    args = parser.parse_args(argv)

    keys = args.keys or [DEMO_KEY]
    fake = ConvaiFake(seed=args.seed, characters=args.characters, sessions=args.sessions,
                      api_keys=keys, latency=args.latency, rate_limit=args.rate_limit,
                      plan_gated_delete=args.plan_gated_delete,
                      now=EPOCH if args.epoch else datetime.now(UTC))
    loaded = False
    if args.state is not None:
        try:
            loaded = fake.persist(args.state)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            parser.error(f"cannot use the state file {args.state}: {exc!r}")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with fake.serve(args.host, args.port) as server:
        # These are the fake's own demo keys, printed so the demo can be connected.
        print(f"Fake {args.provider} at {server.url}", flush=True)
        for key in keys:
            print(f"  API key: {key}", flush=True)
        if args.state is not None:
            print(f"  Data {'loaded from' if loaded else 'seeded into'} {args.state}", flush=True)
        # A timed wait lets the main thread run the signal handler promptly.
        while not stop.wait(0.5):
            pass
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
