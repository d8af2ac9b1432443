"""Small helpers shared by the screen modules."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from ..models import Connection


def user_connection(request: HttpRequest, pk: int) -> Connection:
    """A connection the person may see; any other id is a 404, never a 403 that leaks it."""
    return get_object_or_404(Connection.objects.visible_to(request.user), pk=pk)


def is_fragment(request: HttpRequest) -> bool:
    """An HTMX request for a fragment (not a boosted full-page navigation)."""
    htmx: Any = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted


def int_or_404(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError as exc:
        raise Http404("Not a valid id.") from exc
