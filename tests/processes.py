"""Celery workers and beats as real processes, for the tests that kill them: started on the
test database with the test's broker, each in its own process group so that a kill takes
its pool children with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from tests.helpers import ROOT, wait_for


def environment(data_dir: Path, **overrides: str) -> dict[str, str]:
    """What a worker of the test needs: the test database (its name is only known once the
    tests run), the encryption keys of the test settings, prompt sweeps and takeovers."""
    db = settings.DATABASES["default"]
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "LETHE_DATA_DIR": str(data_dir),
        "LETHE_SECRET_KEY": "process-test",
        "LETHE_ENCRYPTION_KEYS": ",".join(settings.LETHE_ENCRYPTION_KEYS),
        "LETHE_STUCK_AFTER": "3",
        "LETHE_SWEEP_INTERVAL": "1",
        "LETHE_ERASE_BATCH": "1",
        "LETHE_PROVIDER_RATE": "1000",
        "LETHE_PROVIDER_HOSTS": "127.0.0.1",  # the fakes, on loopback
        "LETHE_SECURE": "0",
        "PYTHONPATH": str(ROOT),
        **overrides,
    }


def start(env: dict[str, str], *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """``celery -A dashboard <args>``, run from LETHE_DATA_DIR so whatever it writes stays
    there; its output goes to ``log`` (read it when a test fails) or nowhere."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dashboard", *args],
            cwd=env["LETHE_DATA_DIR"], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def worker(env: dict[str, str], *extra: str, concurrency: int = 1,
           log: Path | None = None, loglevel: str = "WARNING") -> subprocess.Popen[bytes]:
    return start(env, "worker", "--pool", "prefork", "--concurrency", str(concurrency),
                 "--loglevel", loglevel, *extra, log=log)


def beat(env: dict[str, str], name: str = "beat", log: Path | None = None
         ) -> subprocess.Popen[bytes]:
    return start(env, "beat", "--loglevel", "WARNING",
                 "--schedule", str(Path(env["LETHE_DATA_DIR"]) / name), log=log)


def pool_child(process: subprocess.Popen[bytes]) -> int:
    """The pid of the first pool process of a prefork worker, once it has one."""
    def children() -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(process.pid)],
                             capture_output=True, text=True, check=False).stdout
        return [int(p) for p in out.split()]
    return wait_for(lambda: next(iter(children()), 0), what="the pool child to start")


def kill(process: subprocess.Popen[bytes]) -> None:
    """``kill -9`` the process and everything it started, as a crash would."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the process and its children, whatever state they are in."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    kill(process)
