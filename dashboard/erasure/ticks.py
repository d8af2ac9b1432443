"""One beat's schedule at a time: with two beats running (by mistake, or while one is
replaced), each periodic task would run twice as often. A periodic task takes its tick
first, and the tick is given at most once per half of its interval, so the second beat's
tasks find it taken and do nothing."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import Tick


def take(name: str, every: float) -> bool:
    """Whether this run of the periodic task ``name`` (scheduled every ``every`` seconds)
    is the one that counts."""
    now = timezone.now()
    try:
        Tick.objects.get_or_create(name=name, defaults={"last_at": now - timedelta(days=1)})
    except IntegrityError:
        pass  # made by the other beat a moment ago
    with transaction.atomic():
        tick = Tick.objects.select_for_update().get(name=name)
        if tick.last_at > now - timedelta(seconds=every / 2):
            return False
        tick.last_at = now
        tick.save(update_fields=["last_at"])
    return True
