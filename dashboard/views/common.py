"""Small helpers shared by the screen modules."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from ..models import Connection, Finding
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


def with_previews(text: str, findings: list[Finding]) -> str:
    """``text`` with each finding replaced by its masked preview, as plain text (for
    snippets marked up afterwards, such as search hits)."""
    for finding in sorted(findings, key=lambda f: f.start, reverse=True):
        if finding.end <= len(text):
            text = f"{text[:finding.start]}{finding.preview}{text[finding.end:]}"
    return text


def masked(text: str, findings: list[Finding], revealed: int | None = None,
           current: int | None = None) -> SafeString:
    """A message's text with each finding marked and shown by its masked preview, save
    ``revealed`` (shown in clear, after the reveal was audited). Every piece is escaped;
    only <mark> is added, so chat text can never inject markup."""
    out: list[str] = []
    pos = 0
    for finding in sorted(findings, key=lambda f: f.start):
        if finding.start < pos or finding.end > len(text):
            continue  # stale (the text changed since); the next sync makes it anew
        shown = text[finding.start:finding.end] if finding.pk == revealed else finding.preview
        css = "finding current" if finding.pk in (current, revealed) else "finding"
        out += [str(escape(text[pos:finding.start])),
                str(format_html('<mark class="{}" id="finding-{}" title="{}">{}</mark>', css,
                                finding.pk, finding.get_kind_display(), shown))]
        pos = finding.end
    out.append(str(escape(text[pos:])))
    return mark_safe("".join(out))  # noqa: S308 - every piece escaped  # nosec B308 B703
