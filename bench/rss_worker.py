"""The 1,000,000-message sync in a process of its own, reporting its peak memory.

    python -m bench.rss_worker '{"secrets": {...}, "options": {...}}'

Uses the bench database from the environment; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    import django

    django.setup()
    from django.conf import settings

    # As in production: DEBUG keeps every SQL statement in memory.
    settings.DEBUG = False
    from django.contrib.auth import get_user_model

    from dashboard.mirror import sync
    from dashboard.models import Connection

    config = json.loads(sys.argv[1])
    owner = get_user_model().objects.create_user("bench-rss")
    conn = Connection(owner=owner, provider="characterai", label="bench 1M",
                      options=config["options"])
    conn.set_secrets(config["secrets"])
    conn.save()
    run = sync.perform_sync(sync.start(conn).pk)
    if run.status != "ok":
        sys.exit(f"sync failed: {run.error}")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"messages": run.messages, "peak_rss_mb": peak_kb / 1024}))


if __name__ == "__main__":
    main()
