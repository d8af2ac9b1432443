#!/usr/bin/env python3
"""Run the test suite against PostgreSQL, wherever one can be had, and the system suite.

    scripts/test.py                  the suite (two processes), then its SQLite lane, and
                                     beside both the system suite
    scripts/test.py [pytest args]    the suite only, with those arguments
    scripts/test.py --sqlite [args]  the SQLite lane only
    scripts/test.py --system [args]  the system suite only

The suite uses DATABASE_URL if set; else the server on 127.0.0.1:5432 if it answers; else a
throw-away cluster started from this machine's PostgreSQL binaries and removed afterwards.
The SQLite lane runs the files that hold on both databases on SQLite, which `make run`
uses: the demo's journey from sync to preview and job must work there too.
The system suite (tests/system) stops and kills the servers it runs on, so it always gets a
PostgreSQL and a Redis of its own, on free ports (see tests/services.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import REDIS_HINT, Postgres, answers, binary, free_port  # noqa: E402


class Pytest:
    """A pytest run in a scratch LETHE_DATA_DIR, removed when it is over."""

    def __init__(self, env: dict[str, str], args: list[str], output: IO[bytes] | None = None):
        self.data_dir = tempfile.mkdtemp(prefix="lethe-test-")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pytest", *args], cwd=ROOT,
            env={**env, "LETHE_DATA_DIR": self.data_dir},
            stdout=output, stderr=subprocess.STDOUT if output else None)

    def wait(self) -> int:
        try:
            return self.process.wait()
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def suite(args: list[str]) -> int:
    env = dict(os.environ)
    stop: Callable[[], None] | None = None
    if not env.get("DATABASE_URL"):
        if answers("127.0.0.1", 5432):
            env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/lethe"
        else:
            cluster = Postgres().start()
            env["DATABASE_URL"], stop = cluster.url, cluster.remove
            print("Started a temporary PostgreSQL cluster for the tests", flush=True)
    env.setdefault("CELERY_BROKER_URL", "memory://")
    try:
        return Pytest(env, args or ["-n", "2"]).wait()
    finally:
        if stop:
            stop()


# What `make run` does, on the demo's database: these files hold on both; the rest of the
# suite needs PostgreSQL (COPY, full-text search, row locks, concurrent workers).
SQLITE = ["tests/mirror/test_sync.py", "tests/mirror/test_textquery.py",
          "tests/views/test_views.py", "tests/views/test_conversation_list.py",
          "tests/views/test_overview.py", "tests/views/test_job_pages.py",
          "tests/erasure/test_decision.py", "tests/erasure/test_erasure_workflow.py",
          "tests/erasure/test_requests.py"]


def sqlite(args: list[str]) -> int:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.setdefault("CELERY_BROKER_URL", "memory://")
    print("== The SQLite lane: the demo's database", flush=True)
    return Pytest(env, ["-p", "no:xdist", "-q", *(args or SQLITE)]).wait()


def system(args: list[str], output: IO[bytes] | None = None) -> Pytest:
    """The servers are started by the system suite's conftest on the ports named here, since
    it stops and starts them; nothing else is pointed at them."""
    binary("redis-server", REDIS_HINT)
    redis = f"redis://127.0.0.1:{free_port()}"
    env = {**os.environ, "LETHE_SYSTEM_SUITE": "1",
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/lethe",
           "CELERY_BROKER_URL": f"{redis}/0", "LETHE_REDIS_URL": f"{redis}/1"}
    return Pytest(env, ["tests/system", "-p", "no:xdist", *args], output)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--system"]:
        return system(argv[1:]).wait()
    if argv[:1] == ["--sqlite"]:
        return sqlite(argv[1:])
    if argv:
        return suite(argv)
    # The system suite mostly waits (out the outages it stages, for servers to start), so
    # it runs beside the suite; its report follows the suite's.
    with tempfile.TemporaryFile() as report:
        beside = system(["-q"], report)
        try:
            failed = suite([])
            failed_sqlite = sqlite([])
        except BaseException:  # interrupted: take the system suite and its servers down too
            beside.process.terminate()
            raise
        failed_system = beside.wait()
        report.seek(0)
        print("== The system suite: outages staged mid-job, the deploy kit end to end", flush=True)
        sys.stdout.buffer.write(report.read())
        sys.stdout.flush()
    return failed or failed_sqlite or failed_system


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
