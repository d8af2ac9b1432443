"""Erased means erased in Lethe too: once a provider erased something (acknowledged,
verified, already gone, soft-deleted), Lethe drops what it mirrored of it.

What goes: message text and author, conversation titles (often a chat's first line), and
the findings in that text.
What stays: provider ids, positions, times, whether a message was a person's, and the
erasure items with their outcomes, which is what a receipt needs. Called in the transaction
that records the outcome; a sync never brings the text back (see `reader`, `writer`).
"""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import Count, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import Conversation, Finding, Message, MirrorState
from .findings import scanner as findings_scanner
from .titles import derived_title, titles_from

ERASED = MirrorState.ERASED


def purge(conversations: Collection[int] = (), messages: Collection[int] = ()) -> None:
    """Drop the mirrored text of these conversations (whole) and messages (single)."""
    now = timezone.now()
    when = Coalesce("erased_at", Value(now))
    if conversations:
        Conversation.objects.filter(pk__in=conversations).update(
            mirror_state=ERASED, title="", message_count=0, erased_at=when)
        Message.objects.filter(conversation_id__in=conversations).update(
            mirror_state=ERASED, text="", author="", erased_at=when)
        Finding.objects.filter(conversation_id__in=conversations).delete()
    if messages:
        _purge_messages(messages, when)


def _purge_messages(ids: Collection[int], when: Coalesce) -> None:
    chosen = Message.objects.filter(pk__in=ids).exclude(mirror_state=ERASED)
    # The titles these messages may have given their conversations, before they go.
    derived: dict[int, set[str]] = {}
    human = list(chosen.filter(is_human=True).values_list("conversation_id", "text"))
    scanner = findings_scanner() if human else None  # its team patterns are a query
    for conv_id, text in human:
        derived.setdefault(conv_id, set()).update(titles_from(text, scanner))
    touched = set(Message.objects.filter(pk__in=ids).values_list("conversation_id", flat=True))
    Message.objects.filter(pk__in=ids).update(mirror_state=ERASED, text="", author="",
                                              erased_at=when)
    Finding.objects.filter(message_id__in=ids).delete()
    held = Message.objects.filter(
        conversation=OuterRef("pk"), mirror_state=MirrorState.PRESENT
    ).order_by().values("conversation").annotate(n=Count("pk")).values("n")
    Conversation.objects.filter(pk__in=touched).exclude(mirror_state=ERASED).update(
        message_count=Coalesce(Subquery(held), 0))
    for conv in Conversation.objects.filter(pk__in=list(derived)).exclude(mirror_state=ERASED):
        if conv.title in derived[conv.pk]:
            first = conv.messages.filter(mirror_state=MirrorState.PRESENT, is_human=True
                                         ).exclude(text="").order_by("position").first()
            conv.title = (derived_title(first.text, scanner) if first else ""
                          ) or conv.provider_id
            conv.save(update_fields=["title"])
