"""PostgreSQL and Redis servers of the tests' own, started from this machine's binaries on
free loopback ports, and stopped, killed and started again by the fault tests.

Standard library only: scripts/test.py uses it before anything is installed into the
environment it checks. As root (containers), PostgreSQL runs as the postgres user, since
initdb refuses root.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def binary(name: str, hint: str) -> str:
    """The path of ``name``; exits with a one-line install hint when there is none."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise SystemExit(f"The tests need {name}: {hint}")
    return found


PG_HINT = "install PostgreSQL (Debian: apt-get install postgresql) or set DATABASE_URL."
REDIS_HINT = "install Redis (Debian: apt-get install redis-server)."


class Postgres:
    """A throw-away cluster in a temporary folder; ``url`` names its database ``lethe``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="lethe-pg-"))
        self.data = self.workdir / "data"
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/lethe"
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*self._as, binary("initdb", PG_HINT), "-D", str(self.data),
                        "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, stdout=subprocess.DEVNULL)

    def _ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run([*self._as, binary("pg_ctl", PG_HINT), "-D", str(self.data), *args],
                       check=check, stdout=subprocess.DEVNULL)

    def start(self) -> Postgres:
        self._ctl("-l", str(self.workdir / "log"), "-o",
                  f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -F",
                  "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session and stops (an outage); ``immediate`` is a crash."""
        self._ctl("-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)


class Redis:
    """A Redis that keeps nothing on disk: killing it loses every queued message, the
    hardest case for the broker."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="lethe-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Redis:
        self.process = subprocess.Popen(
            [binary("redis-server", REDIS_HINT), "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not answers("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)
