"""Subject search: one box across every connection a person can see, by name, e-mail,
phone number or any phrase, over mirrored titles and message text; results grouped by
provider and conversation with the matching lines, selectable into one erasure request
(one job per connection). Also the combined receipt of such a request.

Message text is untrusted: snippets are escaped first, then the hits are marked.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST

from ..erasure import freeze
from ..mirror import selection, textquery
from ..models import Conversation, Finding, Message, MirrorState
from ..team.roles import Role
from .common import parse_ids, require_role, with_previews

SHOWN = 100  # conversations on the page; "select all" still takes every match
LINES = 5  # matching lines shown per conversation
SNIPPET = 240
PHONE = re.compile(r"^\+?[\d ().-]{6,}$")
# Separators people write inside phone numbers; the same pattern works in PostgreSQL's
# regular expressions and in Python's (the demo's SQLite).
SEPARATORS = "[ ()./-]*"


def phone_pattern(q: str) -> str:
    """A regex matching the digits of a phone-number query however they are spaced."""
    digits = re.sub(r"\D", "", q)
    if not PHONE.match(q.strip()) or len(digits) < 6:
        return ""
    return r"\+?" + SEPARATORS.join(digits)


def terms(q: str) -> list[str]:
    """What to mark in the snippets: "quoted phrases" and words, not -exclusions or OR."""
    found = re.findall(r'"([^"]+)"|(\S+)', q)
    words = [phrase or word for phrase, word in found]
    return [w for w in words if w and not w.startswith("-") and w.lower() != "or"]


def matching(user: Any, q: str) -> QuerySet[Conversation]:
    """Present conversations visible to `user` whose title, character or messages match `q`."""
    condition = selection.text_matches(q)
    pattern = phone_pattern(q)
    if pattern:
        condition |= Q(Exists(Message.objects.filter(conversation=OuterRef("pk"),
                                                     text__iregex=pattern)))
    return Conversation.objects.visible_to(user).filter(
        condition, mirror_state=MirrorState.PRESENT)


def matching_lines(q: str, conversation_ids: list[int]) -> QuerySet[Message]:
    """The matching messages of these conversations. The full-text condition is the one
    `selection.message_hits` uses, applied to messages directly."""
    mine = Message.objects.filter(conversation_id__in=conversation_ids)
    mine, condition = textquery.message_condition(mine, textquery.parse(q))
    pattern = phone_pattern(q)
    if pattern:
        condition |= Q(text__iregex=pattern)
    return mine.filter(condition).order_by("conversation_id", "position")


def hit_pattern(q: str) -> re.Pattern[str] | None:
    parts = [re.escape(t) for t in sorted(terms(q), key=len, reverse=True)]
    phone = phone_pattern(q)
    if phone:
        parts.insert(0, phone)
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def marked(text: str, q: str) -> SafeString:
    """A snippet around the first hit with every hit marked. Hits are found in the raw
    text, then every piece is escaped and only <mark> is added, so chat text can never
    inject markup and a term can never match inside an entity the escaping made."""
    pattern = hit_pattern(q)
    hit = pattern.search(text) if pattern else None
    start = max(0, (hit.start() if hit else 0) - SNIPPET // 3)
    snippet = text[start:start + SNIPPET]
    out = ["…" if start else ""]
    pos = 0
    for m in pattern.finditer(snippet) if pattern else []:
        if m.end() == m.start():
            continue
        out += [str(escape(snippet[pos:m.start()])), "<mark>", str(escape(m.group(0))),
                "</mark>"]
        pos = m.end()
    out += [str(escape(snippet[pos:])), "…" if start + SNIPPET < len(text) else ""]
    return mark_safe("".join(out))  # noqa: S308 - every piece escaped  # nosec B308 B703


def search(request: HttpRequest) -> HttpResponse:
    # NUL cannot be stored or searched in PostgreSQL text; nobody means it.
    q = request.GET.get("q", "").replace("\x00", "").strip()[:200]
    context: dict[str, Any] = {"q": q, "groups": [], "total": 0, "shown": 0}
    if len(q) >= 2:
        found = matching(request.user, q).select_related("connection", "character").order_by(
            "connection__provider", "connection__label", "-last_message_at", "-id")
        shown = list(found[:SHOWN])
        lines: dict[int, list[Message]] = {}
        for message in matching_lines(q, [c.pk for c in shown])[:SHOWN * LINES * 4]:
            lines.setdefault(message.conversation_id, []).append(message)
        # What the findings' detectors found is shown masked here as everywhere else: a
        # value is seen in clear only through the transcript's audited reveal.
        found_in: dict[int, list[Finding]] = {}
        for finding in Finding.objects.filter(
                message__in=[m for hits in lines.values() for m in hits[:LINES]]):
            found_in.setdefault(finding.message_id, []).append(finding)
        groups: dict[str, dict[str, Any]] = {}
        for conv in shown:
            group = groups.setdefault(conv.connection.provider, {
                "provider": conv.connection, "conversations": []})
            hits = lines.get(conv.pk, [])
            group["conversations"].append({
                # No matching line: the title matched, or else the character's name.
                "by_title": textquery.holds(conv.title, textquery.parse(q)),
                "conversation": conv,
                "title": marked(conv.title or conv.provider_id, q),
                "lines": [(m, marked(with_previews(m.text, found_in.get(m.pk, [])), q))
                          for m in hits[:LINES]],
                "more": max(0, len(hits) - LINES),
            })
        context.update(groups=list(groups.values()), total=found.count(), shown=len(shown))
    elif q:
        context["too_short"] = True
    return render(request, "search/results.html", context)


@require_POST
@require_role(Role.OPERATOR)
def search_erase(request: HttpRequest) -> HttpResponse:
    q = request.POST.get("q", "").replace("\x00", "").strip()[:200]
    back = redirect(reverse("search") + "?" + urlencode({"q": q}))
    if request.POST.get("select_all") == "1" and len(q) >= 2:
        chosen = matching(request.user, q)
        # The query itself is not recorded: it is often the very personal data being erased.
        scope: dict[str, Any] = {"search": True, "select_all": True}
    else:
        try:
            ids = parse_ids(request.POST.getlist("conversation"))
        except ValueError:
            messages.error(request, "The selection held an id that is not a number.")
            return back
        chosen = Conversation.objects.visible_to(request.user).filter(pk__in=ids)
        scope = {"search": True, "select_all": False, "selected": chosen.count()}
    try:
        request_id = freeze.conversations(request.user, chosen, scope)
    except freeze.SelectionError as exc:
        messages.error(request, str(exc))
        return back
    return redirect("erase_preview", request_id=request_id)
