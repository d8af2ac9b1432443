"""Which conversations a filter matches, for one person. One function serves the list,
"select all N matching" and the erase preview, so they can never disagree."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from ..models import Character, Conversation, Message, MirrorState
from . import textquery


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
        qs = qs.filter(text_matches(data["q"]))
    return qs


def text_matches(text: str) -> Q:
    """Conversations whose title, character's name or one message matches ``text`` in the
    grammar of `textquery` (words in any order, "phrases", -exclusions)."""
    terms = textquery.parse(text)
    if not terms:
        return Q(pk__in=[])
    # Characters are few: matched once, not joined and tested on every conversation.
    named = Character.objects.filter(textquery.regex_condition("name", terms)).values("pk")
    return (textquery.regex_condition("title", terms) | Q(character__in=named)
            | Q(Exists(message_hits(text))))


def message_hits(text: str) -> QuerySet[Message]:
    """Messages of the outer conversation that match ``text`` (see `textquery`; on
    PostgreSQL served by the GIN index of migration ``search``)."""
    return textquery.filter_messages(Message.objects.filter(conversation=OuterRef("pk")),
                                     textquery.parse(text))


# The list's sortable columns: each a key the keyset pager orders by (with the id as the
# tie-breaker), and whether that key can be NULL (NULLs sort above every value).
SORT_KEYS: dict[str, tuple[Any, bool]] = {
    "title": (Lower("title"), False),
    "character": (Lower("character__name"), True),
    "messages": (F("message_count"), False),
    "first": (F("started_at"), True),
    "last": (F("last_message_at"), True),
}


def sorted_by(qs: QuerySet[Conversation], column: str) -> tuple[QuerySet[Conversation], bool]:
    """``qs`` with its sort key for `column` annotated as ``sort_key``, and whether the
    key may be NULL."""
    key, nullable = SORT_KEYS[column]
    return qs.annotate(sort_key=key), nullable


def held(user: Any, ids: list[int], filters: list[dict[str, Any]], excluded: list[int]
         ) -> QuerySet[Conversation]:
    """A person's held selection: the present conversations they may see that they ticked
    (`ids`) or that match a filter they selected whole, less those they unticked since."""
    chosen = Q(pk__in=ids)
    for data in filters:
        chosen |= Q(pk__in=matching(user, data).values("pk"))
    return Conversation.objects.visible_to(user).filter(
        chosen, mirror_state=MirrorState.PRESENT).exclude(pk__in=excluded)


def scope_of(data: dict[str, Any]) -> dict[str, Any]:
    """The filter as plain JSON, recorded on the job so people can see how it was chosen.
    The search text is not kept: it is often the very personal data being erased."""
    scope = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
             for k, v in data.items() if v not in (None, "") and k != "q"}
    if data.get("q"):
        scope["text_filter"] = True
    return scope
