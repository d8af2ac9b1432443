"""What every figure of `make bench` stands on: its own database, the fakes in child
processes, connections to them, and progress lines on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = os.environ.get("LETHE_BENCH_DB", "lethe_bench")
ADMIN_URL = os.environ.get("LETHE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_URL = ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}"
# Every fake answers this long after a request arrives; a sync keeps this many in flight.
LATENCY = 0.02
IN_FLIGHT = 8


def environment() -> dict[str, str]:
    data = tempfile.mkdtemp(prefix="lethe-bench-")
    return {
        "DATABASE_URL": DB_URL,
        "LETHE_DEBUG": "1",
        "LETHE_DATA_DIR": data,
        "LETHE_LOG_LEVEL": "WARNING",
        "LETHE_ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
        "LETHE_SYNC_CONCURRENCY": str(IN_FLIGHT),
        "PYTHONPATH": str(ROOT),
        # Nothing here needs a worker; tasks enqueued along the way go nowhere.
        "CELERY_BROKER_URL": "memory://localhost/",
    }


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


class Fake:
    """A fake provider in a child process (bench/fakeserver.py)."""

    def __init__(self, provider: str, **knobs: Any) -> None:
        args = [sys.executable, "-m", "bench.fakeserver", provider]
        for key, value in knobs.items():
            if value is not None:
                args += [f"--{key.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("URL "):
            raise RuntimeError(f"the {provider} fake did not start: {line!r}")
        config = json.loads(line[4:])
        self.secrets: dict[str, str] = config["secrets"]
        self.options: dict[str, str] = config["options"]

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())  # type: ignore[no-any-return]

    def stop(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


@contextmanager
def fake(provider: str, **knobs: Any) -> Iterator[Fake]:
    started = time.perf_counter()
    f = Fake(provider, **knobs)
    log(f"{provider} fake ready in {time.perf_counter() - started:.1f} s")
    try:
        yield f
    finally:
        f.stop()


def settle() -> None:
    """Let the database catch up with what the last part wrote (statistics, visibility
    and hint bits, a checkpoint) before the next timed part, so that no figure pays for
    the autovacuum and checkpoint of the one before it: a sync ran 3-7 % slower, and
    unevenly, right after another."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
        cursor.execute("CHECKPOINT")


def log(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def connection_for(owner: Any, provider: str, secrets: dict[str, str],
                   options: dict[str, str], label: str) -> Any:
    from dashboard.models import Connection

    conn = Connection(owner=owner, provider=provider, label=label, options=options)
    conn.set_secrets(secrets)
    conn.save()
    return conn
