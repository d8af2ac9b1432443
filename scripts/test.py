#!/usr/bin/env python3
"""Run the test suite against PostgreSQL, wherever one can be had.

DATABASE_URL if set; else the server on 127.0.0.1:5432 if it answers; else a throw-away
cluster started from this machine's PostgreSQL binaries and removed afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        sys.exit(f"No DATABASE_URL, no PostgreSQL on 127.0.0.1:5432 and no {name} to start one. "
                 "Install PostgreSQL (Debian: postgresql) or set DATABASE_URL.")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def temporary_cluster() -> tuple[str, callable]:  # type: ignore[valid-type]
    workdir = Path(tempfile.mkdtemp(prefix="lethe-pg-"))
    data, port = workdir / "data", free_port()
    # initdb refuses to run as root; run the cluster as the postgres user if we are root.
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*prefix, pg_bin("initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*prefix, pg_bin("pg_ctl"), "-D", str(data), "-l", str(workdir / "log"),
                    "-o", f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -F", "-w",
                    "start"], check=True, stdout=subprocess.DEVNULL)

    def stop() -> None:
        subprocess.run([*prefix, pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, check=False)
        shutil.rmtree(workdir, ignore_errors=True)

    return f"postgres://postgres@127.0.0.1:{port}/lethe", stop


def main() -> int:
    env = dict(os.environ)
    stop = None
    if not env.get("DATABASE_URL"):
        if answers("127.0.0.1", 5432):
            env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/lethe"
        else:
            env["DATABASE_URL"], stop = temporary_cluster()
            print("Started a temporary PostgreSQL cluster for the tests", flush=True)
    env.setdefault("CELERY_BROKER_URL", "memory://")
    env["LETHE_DATA_DIR"] = tempfile.mkdtemp(prefix="lethe-test-")
    try:
        args = sys.argv[1:] or ["-n", "2"]
        return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env)
    finally:
        shutil.rmtree(env["LETHE_DATA_DIR"], ignore_errors=True)
        if stop:
            stop()


if __name__ == "__main__":
    sys.exit(main())
