"""Recording audit events. Callers pass ids, labels and counts; never secrets or chat text."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
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
        remote_addr=client_address(request) if request is not None else None,
    )


def in_networks(address: str | None, networks: list[str]) -> bool:
    try:
        found = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    return any(found in ipaddress.ip_network(net, strict=False) for net in networks)


def client_address(request: HttpRequest) -> str:
    """Who sent the request, for the audit trail and the sign-in lockout. Behind a reverse
    proxy every request comes from the proxy, so when it comes from one of
    LETHE_PROXY_ADDRESSES the address the proxy wrote last in X-Forwarded-For is the
    client's (deploy/nginx overwrites the header, so a client cannot plant one there).
    From anywhere else the header is ignored."""
    peer = str(request.META.get("REMOTE_ADDR", ""))
    if not in_networks(peer, settings.LETHE_PROXY_ADDRESSES):
        return peer
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")[-1].strip()
    return forwarded if in_networks(forwarded, ["0.0.0.0/0", "::/0"]) else peer
