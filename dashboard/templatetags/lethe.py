"""Display helpers: times in the viewer's zone with the zone shown, short ids, search
highlights, and the human labels of stored states."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil

from ..lib import labels
from ..models.findings import Kind as FindingKind

register = template.Library()


@register.simple_tag
def when(value: datetime | str | None) -> SafeString:
    """A moment in the viewer's time zone (``lib.timezones``), with the zone's short name
    shown and the full zone and seconds on hover. Takes an ISO string too (receipts)."""
    if isinstance(value, str):
        value = _parse_iso(value)
    if value is None:
        return mark_safe('<span class="muted">—</span>')  # noqa: S308  # nosec B308
    local = timezone.localtime(value)
    return format_html('<time datetime="{}" title="{} ({})">{} <span class="tz">{}</span></time>',
                       value.isoformat(), local.strftime("%Y-%m-%d %H:%M:%S %Z"),
                       timezone.get_current_timezone_name(), local.strftime("%Y-%m-%d %H:%M"),
                       local.strftime("%Z"))


@register.filter
def ago(moment: datetime | None) -> str:
    """"3 minutes ago", or "just now" within the minute (Django's timesince would say "0
    minutes")."""
    if moment is None:
        return ""
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment)} ago"


@register.filter
def left(moment: datetime | None) -> str:
    """"About 3 minutes left.", or "Less than a minute left." (not "About 0 minutes")."""
    if moment is None:
        return ""
    if moment - timezone.now() < timedelta(minutes=1):
        return "Less than a minute left."
    return f"About {timeuntil(moment)} left."


def _parse_iso(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if timezone.is_aware(value) else None


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


TABLES: dict[str, Mapping[str, str]] = {
    "item": labels.ITEM_STATE, "job": labels.JOB_STATUS, "kind": labels.ITEM_KIND,
    "mirror": labels.MIRROR_STATE, "connection": labels.CONNECTION_STATUS,
    "sync": labels.SYNC_STATUS, "run": labels.POLICY_RUN_STATUS,
    "finding": dict(FindingKind.choices),
}


@register.filter
def state_label(value: str, table: str = "item") -> str:
    """The human label of a stored state: ``{{ item.outcome|state_label }}``,
    ``{{ receipt.status|state_label:"job" }}``."""
    return labels.label(TABLES[table], str(value))


@register.filter
def meaning(state: str) -> str:
    """What an item outcome means, in a sentence for someone who does not know Lethe."""
    return labels.ITEM_MEANING.get(str(state), "")


@register.filter
def outcomes(counts: Mapping[str, int]) -> str:
    """Item counts as a phrase: "113 verified, 2 failed"."""
    return labels.outcomes(counts)


@register.simple_tag
def next_run(policy: Any) -> SafeString:
    """When a retention policy runs next, the same words on every page: "off", "due now"
    (the scheduler looks every LETHE_POLICY_INTERVAL seconds), or the time."""
    if not policy.enabled:
        return format_html("{}", "off")
    at = policy.next_run_at
    if at is None or at <= timezone.now():
        return format_html('<span data-next-run="due">{}</span>',
                           f"due now (starts within {_seconds(settings.LETHE_POLICY_INTERVAL)})")
    return when(at)


def _seconds(value: float) -> str:
    n = max(1, round(value))
    if n % 60 == 0:
        minutes = n // 60
        return "a minute" if minutes == 1 else f"{minutes} minutes"
    return f"{n} seconds"


@register.simple_tag
def select_options(field: Any) -> SafeString:
    """The <option>s of a form's choice field, the current value selected. A simple tag,
    not the widget's templates (one per option): the character list can be long."""
    current = "" if field.value() is None else str(field.value())
    return format_html_join("", '<option value="{}"{}>{}</option>', (
        (value, " selected" if str(value) == current else "", label)
        for value, label in field.field.choices))
