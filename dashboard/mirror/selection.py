"""Which conversations a filter matches, for one person. One function serves the list,
"select all N matching" and the erase preview, so they can never disagree."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from ..models import Conversation, Message

# 'simple': lower-cased words, no stemming or stop words, so names, codes and secrets in
# any language are found as typed. Changing it means a new index (see the migration).
SEARCH_CONFIG = "simple"


def matching(user: Any, data: dict[str, Any]) -> QuerySet[Conversation]:
    """Conversations visible to `user` that match the cleaned ConversationFilter data."""
    qs = Conversation.objects.visible_to(user)
    if data.get("connection"):
        qs = qs.filter(connection_id=data["connection"])
    if data.get("character"):
        qs = qs.filter(character_id=data["character"])
    state = data.get("state")
    if state == "protected":
        qs = qs.filter(protected=True)
    elif state in ("soft_deleted", "archived"):
        qs = qs.filter(provider_state=state)
    elif state:
        qs = qs.filter(mirror_state=state)
    tz = timezone.get_current_timezone()
    if data.get("start"):
        qs = qs.filter(last_message_at__gte=datetime.combine(data["start"], time.min, tz))
    if data.get("end"):
        qs = qs.filter(started_at__lte=datetime.combine(data["end"], time.max, tz))
    if data.get("q"):
        text = data["q"]
        qs = qs.filter(Q(title__icontains=text) | Exists(message_hits(text)))
    return qs


def message_hits(text: str) -> QuerySet[Message]:
    """Messages of the outer conversation whose text matches ``text``.

    On PostgreSQL a full-text match (words, any order; "quoted phrases", -exclusions) served
    by the GIN index of migration ``search``; the expression must stay exactly the indexed
    one. Elsewhere (the embedded SQLite demo) a substring match.
    """
    mine = Message.objects.filter(conversation=OuterRef("pk"))
    if connection.vendor != "postgresql":
        return mine.filter(text__icontains=text)
    return mine.annotate(words=SearchVector("text", config=SEARCH_CONFIG)).filter(
        words=SearchQuery(text, config=SEARCH_CONFIG, search_type="websearch"))


def scope_of(data: dict[str, Any]) -> dict[str, Any]:
    """The filter as plain JSON, recorded on the job so people can see how it was chosen.
    The search text is not kept: it is often the very personal data being erased."""
    scope = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
             for k, v in data.items() if v not in (None, "") and k != "q"}
    if data.get("q"):
        scope["text_filter"] = True
    return scope
