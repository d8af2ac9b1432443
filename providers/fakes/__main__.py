"""Run fake providers in the foreground on real ports until SIGINT or SIGTERM.

    python -m providers.fakes convai --port 8101 --latency 0.02 --seed 1
    python -m providers.fakes all --port 8101 --state-dir var/fakes

`all` serves every fake, each on its own port from --port on (see `demo_ports`). With
--state FILE (one fake) or --state-dir DIR (`all`) the data outlives the process: it is
loaded when the file exists (instead of seeding) and written back after every change.
Each fake prints its address and the demo credentials it accepts (its own, not real ones).
"""

from __future__ import annotations

import argparse
import inspect
import signal
import sys
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from . import FAKES, demo_ports
from .base import FakeProvider
from .convai import EPOCH
from .planted import PLANTED


def build(cls: type[FakeProvider], args: argparse.Namespace) -> FakeProvider:
    """The fake with whichever of the command-line settings its constructor takes."""
    wanted: dict[str, Any] = {
        "seed": args.seed, "latency": args.latency, "rate_limit": args.rate_limit,
        "now": EPOCH if args.epoch else datetime.now(UTC),
        "characters": args.characters, "sessions": args.sessions, "api_keys": args.keys,
        "plan_gated_delete": args.plan_gated_delete or None,
    }
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in wanted.items() if k in accepted and v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m providers.fakes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("provider", choices=[*sorted(FAKES), "all"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--characters", type=int, default=None)
    parser.add_argument("--sessions", type=int, default=None, help="per character")
    parser.add_argument("--key", action="append", dest="keys", help="a valid API key")
    parser.add_argument("--rate-limit", type=float, default=None,
                        help="requests per second before answering 429")
    parser.add_argument("--plan-gated-delete", action="store_true",
                        help="Convai: refuse deletes as a plan without the delete API would")
    parser.add_argument("--epoch", action="store_true",
                        help=f"date seeded histories back from {EPOCH:%Y-%m-%d}, not from now")
    parser.add_argument("--planted", action="store_true",
                        help="plant one made-up secret or personal datum of each kind Lethe's "
                             "findings detect (providers/fakes/planted.py) in fresh data")
    parser.add_argument("--state", type=Path, default=None, metavar="FILE")
    parser.add_argument("--state-dir", type=Path, default=None, metavar="DIR")
    args = parser.parse_args(argv)

    names = sorted(FAKES) if args.provider == "all" else [args.provider]
    ports = demo_ports(args.port) if args.provider == "all" else {args.provider: args.port}
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with ExitStack() as stack:
        for name in names:
            fake = build(FAKES[name], args)
            if args.planted:  # data loaded from a state file below replaces it
                fake.plant(list(PLANTED))
            state = args.state if args.provider != "all" else (
                args.state_dir / f"{name}.json" if args.state_dir else None)
            loaded = False
            if state is not None:
                try:
                    loaded = fake.persist(state)
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    parser.error(f"cannot use the state file {state}: {exc!r}")
            server = stack.enter_context(fake.serve(args.host, ports[name]))
            print(f"Fake {name} at {server.url}", flush=True)
            secrets, _ = fake.client_config(server.url)
            for field, value in secrets.items():
                print(f"  {field}: {value}", flush=True)
            if state is not None:
                print(f"  Data {'loaded from' if loaded else 'seeded into'} {state}", flush=True)
        # A timed wait lets the main thread run the signal handler promptly.
        while not stop.wait(0.5):
            pass
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
