#!/usr/bin/env python3
"""Audit the pinned dependencies (requirements.lock) for known vulnerabilities.

Fails on any known vulnerability. Where the vulnerability service cannot be reached (a
machine that sees only a package mirror), pip-audit can look nothing up: that is said
plainly rather than passed off as a clean audit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    result = subprocess.run(
        [sys.executable, "-m", "pip_audit", "-r", str(ROOT / "requirements.lock"),
         "--format", "json", "--progress-spinner", "off"],
        capture_output=True, text=True, check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(result.stdout + result.stderr, file=sys.stderr)
        print("pip-audit: could not run; see above.", file=sys.stderr)
        return 1
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if d.get("skip_reason")]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"pip-audit: {dep['name']} {dep.get('version')} has known vulnerabilities: {ids}")
    if vulnerable:
        return 1
    if deps and len(skipped) == len(deps):
        print(f"pip-audit: the vulnerability service was not reachable; none of the {len(deps)} "
              "pinned packages could be checked here.")
    else:
        print(f"pip-audit: no known vulnerabilities in {len(deps) - len(skipped)} packages "
              f"({len(skipped)} could not be checked).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
