#!/usr/bin/env python3
"""`make bench`: run bench/run.py with this checkout on the path (see bench/run.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
