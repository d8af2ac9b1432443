#!/usr/bin/env python3
"""`make run`: the demo on embedded defaults, stopped cleanly with Ctrl-C.

SQLite and a file-system Celery broker under var/, every provider fake on loopback, one Celery
worker (with beat), and the web server on http://127.0.0.1:$PORT (default 8000).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited early (code {proc.returncode}); see the output above.")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{what} did not start listening on port {port}.")


def main() -> int:
    port = int(os.environ.get("PORT", "8000"))
    fake_port = int(os.environ.get("LETHE_FAKE_PORT", "8101"))
    env = {**os.environ, "LETHE_DEBUG": os.environ.get("LETHE_DEBUG", "1")}
    env.setdefault("LETHE_ALLOWED_HOSTS", "127.0.0.1,localhost")
    data = Path(env.get("LETHE_DATA_DIR", ROOT / "var"))
    data.mkdir(parents=True, exist_ok=True)

    def manage(*args: str) -> None:
        subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True)

    manage("migrate", "--verbosity", "0")
    manage("demo", "--fake-port", str(fake_port))

    procs: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        fakes = subprocess.Popen(
            [PY, "-m", "providers.fakes", "all", "--port", str(fake_port), "--latency", "0.05",
             "--seed", "1", "--planted", "--state-dir", str(data / "fakes")], cwd=ROOT, env=env)
        procs.append(fakes)
        wait_for_port(fake_port, fakes, "The provider fakes")
        procs.append(subprocess.Popen(
            [PY, "-m", "celery", "-A", "dashboard", "worker", "--beat", "--pool", "solo",
             "--loglevel", "WARNING", "--schedule", str(data / "celerybeat-schedule")],
            cwd=ROOT, env=env))
        web = subprocess.Popen(
            [PY, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT, env=env)
        procs.append(web)
        wait_for_port(port, web, "The web server")
        print(f"\n  Lethe is running at http://127.0.0.1:{port}/\n"
              f"  Sign in as demo / lethe-demo (approver / lethe-demo approves). "
              "Press Ctrl-C to stop.\n", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("A component stopped; shutting the rest down.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
