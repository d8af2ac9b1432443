"""Display helpers: times with the absolute value on hover, short ids, search highlights."""

from __future__ import annotations

import re
from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag
def when(value: datetime | None) -> SafeString:
    if value is None:
        return mark_safe('<span class="muted">—</span>')  # noqa: S308  # nosec B308
    local = timezone.localtime(value)
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(),
                       local.strftime("%Y-%m-%d %H:%M:%S %Z"), local.strftime("%Y-%m-%d %H:%M"))


@register.simple_tag
def shortid(value: object) -> SafeString:
    text = str(value)
    short = text if len(text) <= 10 else f"{text[:8]}…"
    return format_html('<code class="id" title="{}">{}</code>'
                       '<button type="button" class="copy" data-copy="{}" '
                       'aria-label="Copy id">copy</button>', text, short, text)


@register.filter
def highlight(text: str, query: str) -> SafeString:
    """Escape first, then mark the hits, so chat text can never inject markup."""
    escaped = str(escape(text))
    if not query:
        return mark_safe(escaped)  # noqa: S308 - escaped above  # nosec B308 B703
    pattern = re.compile(re.escape(str(escape(query))), re.IGNORECASE)
    marked = pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", escaped)
    return mark_safe(marked)  # noqa: S308 - escaped, then only <mark> added  # nosec B308 B703


@register.simple_tag
def provider_badge(connection: object) -> SafeString:
    # A simple tag, not an included template: it is drawn on every row of long lists.
    return format_html('<span class="badge provider provider-{}">{}</span>',
                       getattr(connection, "provider", ""),
                       getattr(connection, "provider_label", ""))
