"""Recording audit events. Callers pass ids, labels and counts; never secrets or chat text."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from ..models import AuditEvent

Action = AuditEvent.Action


def label_of(obj: models.Model) -> str:
    """An object's name in the trail: its ``audit_label()`` where it has one (a model whose
    ``str`` may hold chat text must have one), else ``str``."""
    labelled = getattr(obj, "audit_label", None)
    return (labelled() if callable(labelled) else str(obj))[:200]


def record(actor: Any, action: str, obj: models.Model | None = None,
           request: HttpRequest | None = None, **details: Any) -> AuditEvent:
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        actor=actor if authenticated else None,
        actor_name=(actor.get_username() if authenticated else details.pop("username", ""))[:150],
        action=action,
        object_type=obj._meta.model_name or "" if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_label=label_of(obj) if obj is not None else "",
        details=details,
        remote_addr=request.META.get("REMOTE_ADDR") if request is not None else None,
    )
