#!/usr/bin/env python3
"""What `make test` needs from the machine beyond Python: Chromium for the browser tests,
and the PostgreSQL and Redis server binaries the system suite starts servers of its own
from. Installed with apt when this user may (root, or sudo without a password); otherwise
one line says what to install. Standard library only: it runs before the virtualenv.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

# Debian package -> how to tell it is there.
NEEDS = {
    "chromium": lambda: bool(shutil.which(os.environ.get("LETHE_CHROMIUM", "chromium"))
                             or os.path.exists(os.environ.get("LETHE_CHROMIUM",
                                                              "/usr/bin/chromium"))),
    "postgresql": lambda: bool(shutil.which("initdb")
                               or glob.glob("/usr/lib/postgresql/*/bin/initdb")),
    "redis-server": lambda: bool(shutil.which("redis-server")),
    # The deploy kit's end-to-end test: nginx with TLS, and a real OpenID provider on Node.
    "nginx": lambda: bool(shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")),
    "openssl": lambda: bool(shutil.which("openssl")),
    "nodejs": lambda: bool(shutil.which("node")),
    "npm": lambda: bool(shutil.which("npm")),
}


def may_install() -> list[str] | None:
    """The command prefix that runs apt-get as root, or None when we may not."""
    if not shutil.which("apt-get"):
        return None
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"],
                                               capture_output=True).returncode == 0:
        return ["sudo"]
    return None


def main() -> int:
    missing = [package for package, present in NEEDS.items() if not present()]
    if not missing:
        return 0
    prefix = may_install()
    if prefix is None:
        them = "it" if len(missing) == 1 else "them"
        print(f"make test needs {', '.join(missing)}: install {them} "
              f"(Debian: sudo apt-get install {' '.join(missing)}) and run it again.",
              file=sys.stderr)
        return 1
    print(f"Installing {', '.join(missing)} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*prefix, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends",
                    *missing], check=True, env=env)
    still = [package for package in missing if not NEEDS[package]()]
    if still:
        print(f"apt-get ran, but {', '.join(still)} is still missing.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
