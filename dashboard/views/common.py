"""Small helpers shared by the screen modules."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render

from ..models import Connection
from ..team.roles import Role, role_of

View = Callable[..., HttpResponse | StreamingHttpResponse]


def user_connection(request: HttpRequest, pk: int) -> Connection:
    """A connection the person may see; any other id is a 404, never a 403 that leaks it."""
    return get_object_or_404(Connection.objects.visible_to(request.user), pk=pk)


def is_fragment(request: HttpRequest) -> bool:
    """An HTMX request for a fragment (not a boosted full-page navigation)."""
    htmx: Any = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted


def require_role(role: Role, lookup: Callable[..., object] | None = None
                 ) -> Callable[[View], View]:
    """Refuse (403, with the reason) people whose role is below `role`. With `lookup`, the
    object is looked up first, so an id the person cannot see is a 404 whatever their role."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any
                    ) -> HttpResponse | StreamingHttpResponse:
            if lookup is not None:
                lookup(request, *args, **kwargs)
            mine = role_of(request.user)
            if mine < role:
                return render(request, "403.html", {
                    "reason": f"Your role ({mine.label}) cannot do this: it needs the "
                              f"{role.label} role. Ask an admin of Lethe for it."
                }, status=403)
            return view(request, *args, **kwargs)
        return wrapped

    return decorate


def parse_ids(values: list[str]) -> list[int]:
    """Row ids from a form, sorted and unique. ValueError for anything that is not a
    positive 64-bit integer, so a forged value is a clear error rather than a crash."""
    ids = {int(v) for v in values}
    if any(not 0 < i < 2**63 for i in ids):
        raise ValueError("id out of range")
    return sorted(ids)
