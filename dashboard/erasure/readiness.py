"""Whether this instance can do its work now, for load balancers and systemd: the database
answers, the broker takes a connection, and beat has swept recently (without beat, jobs
are never released from their cancel window, requeued or finished). `/healthz` stays the
cheap "the process answers"; this is the deeper check behind `/readyz` and
`manage.py ready`."""

from __future__ import annotations

from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from ..models import Tick

# Beat is late when it has not swept for this many of its intervals (and at least a minute,
# so a short interval does not make a busy moment look like a dead beat).
LATE_AFTER_INTERVALS = 6


def check() -> dict[str, str]:
    """Each part and what was found: "ok", or why not in a few plain words."""
    return {"database": _database(), "broker": _broker(), "beat": _beat()}


def ready(found: dict[str, str]) -> bool:
    return all(v == "ok" for v in found.values())


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"unavailable ({type(exc).__name__})"
    return "ok"


def _broker() -> str:
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # each transport raises its own errors
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def _beat() -> str:
    try:
        last = Tick.objects.filter(name="sweep").values_list("last_at", flat=True).first()
    except DatabaseError:
        return "unknown (the database is unavailable)"
    if last is None:
        return "has never swept (is `celery -A dashboard beat` running?)"
    late = max(60.0, LATE_AFTER_INTERVALS * settings.LETHE_SWEEP_INTERVAL)
    age = timezone.now() - last
    if age > timedelta(seconds=late):
        return f"last swept {int(age.total_seconds())} s ago (is beat running?)"
    return "ok"
