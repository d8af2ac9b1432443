"""What a preview (and an approver) is shown of a job: exactly what confirming sends, for
the answer given about pinned messages, computed from the frozen items with a few
aggregate queries."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from ..models import Conversation, ErasureItem, ErasureJob
from .freeze import HELD, PINNED, PINNED_MESSAGE, sent

State = ErasureItem.State
SentIf = ErasureItem.SentIf
SAMPLE = 10
EXCERPT = 80  # characters of a message shown in the sample


def _skipped(include_pinned: bool) -> Q:
    skipped = Q(state=State.SKIPPED)
    if include_pinned:
        return skipped & Q(sent_if=SentIf.ALWAYS)
    return skipped


def summary(job: ErasureJob, include_pinned: bool) -> dict[str, Any]:
    """Counts by kind, reasons for what is skipped, characters touched, a sample, and the
    warnings that apply, for one job."""
    items = job.items.all()
    going = items.filter(sent(include_pinned))
    # What goes, per conversation and kind: the counts by kind and by character both come
    # from this one pass over the items.
    per_conversation = list(going.order_by().values_list("conversation_id", "kind").annotate(
        n=Count("id")))
    kinds: dict[str, int] = {}
    for _, kind, n in per_conversation:
        kinds[kind] = kinds.get(kind, 0) + n
    reasons = [
        {"reason": row["detail"], "n": row["n"], "held_by": _held_job(row["detail"])}
        for row in items.filter(_skipped(include_pinned)).values("detail").annotate(
            n=Count("id")).order_by("-n", "detail")
    ]
    skipped = {row["reason"]: row["n"] for row in reasons}
    # Pinned messages are skipped, never sent, until the answer includes them: so their
    # count is one of the reasons, and only a job with conversations skipped for holding
    # them (a reason too) can split any.
    split = 0
    if not include_pinned and PINNED in skipped:
        # Conversations keeping their pinned messages, whose other messages go one by one:
        # an INTERSECT, which the database can only answer in one pass over each side.
        # Asked as a join, the planner, whose statistics cannot know a job frozen a moment
        # ago, took the job for a few rows and read all of its items once per conversation
        # (4 s on 70,000).
        # Unordered on both sides: SQLite refuses an ORDER BY inside a compound statement.
        whole_kept = items.filter(kind=ErasureItem.Kind.CONVERSATION, state=State.SKIPPED,
                                  detail=PINNED).order_by().values("conversation_id")
        split = whole_kept.intersection(going.filter(
            kind=ErasureItem.Kind.MESSAGE).order_by().values("conversation_id")).count()
    connection = job.live_connection()
    return {
        "job": job,
        "count": sum(kinds.values()),
        "conversations": kinds.get(ErasureItem.Kind.CONVERSATION, 0),
        "messages": kinds.get(ErasureItem.Kind.MESSAGE, 0),
        "skipped": reasons,
        # Conversations holding pinned messages, erased message by message when kept.
        "split": split,
        "pinned_kept": 0 if include_pinned else skipped.get(PINNED_MESSAGE, 0),
        # Lists, not querysets, so a template's "if" and "for" see the same rows and an
        # empty section is left out rather than drawn as a bare heading.
        "characters": _characters(going, per_conversation),
        # The sample's ids first, from the items alone: asked with its joins, the database
        # may join every item before it keeps ten.
        "sample": [_sample_row(item) for item in ErasureItem.objects.filter(
            pk__in=list(going.order_by("id").values_list("id", flat=True)[:SAMPLE]),
        ).select_related("conversation__character", "message").order_by("id")],
        "in_memory": _in_memory(job, going),
        "capabilities": connection.provider_class.capabilities,
        "connection": connection,
    }


def _characters(going: QuerySet[ErasureItem], counts: list[tuple[int | None, str, int]]
                ) -> list[dict[str, Any]]:
    """Per character (most touched first): how many whole conversations and single
    messages of theirs go, from the ``counts`` per conversation and kind of what goes,
    summed by the characters of those conversations: a join of every item to its
    conversation and character costs several times more on 200,000 items."""
    # The conversations as a subquery: a list of 20,000 ids costs more to send than this.
    names: dict[int | None, str | None] = dict(Conversation.objects.filter(
        pk__in=going.order_by().values("conversation_id")).values_list(
        "pk", "character__name"))
    rows: dict[str, dict[str, Any]] = {}
    for conversation_id, kind, n in counts:
        name = names.get(conversation_id) or ""
        entry = rows.setdefault(name, {"name": name, "conversations": 0, "messages": 0})
        entry["conversations" if kind == ErasureItem.Kind.CONVERSATION else "messages"] += n
    return sorted(rows.values(), key=lambda r: (-(r["conversations"] + r["messages"]),
                                                r["name"]))


def _sample_row(item: ErasureItem) -> dict[str, Any]:
    """One line of the sample: whose message it is and how it starts, or for a whole
    conversation how many messages go with it."""
    conversation = item.conversation
    row: dict[str, Any] = {
        "item": item,
        "kind": item.get_kind_display(),
        "character": conversation.character.name if conversation and conversation.character
        else "",
        "title": (conversation.title if conversation else "") or item.conversation_provider_id,
        "last_message_at": conversation.last_message_at if conversation else None,
        "author": "", "excerpt": "", "messages": 0,
    }
    if item.message is not None:
        row["author"] = item.message.author
        row["excerpt"] = excerpt(item.message.text)
    elif conversation is not None:
        row["messages"] = conversation.message_count
    return row


def excerpt(text: str, length: int = EXCERPT) -> str:
    """The start of a message on one line, cut at a word where it can be."""
    flat = " ".join(text.split())
    if len(flat) <= length:
        return flat
    cut = flat[:length].rsplit(" ", 1)[0] if " " in flat[:length] else flat[:length]
    return cut.rstrip(",.;:") + "…"


def _in_memory(job: ErasureJob, going: QuerySet[ErasureItem]) -> int:
    """Items whose session the provider added to the character's memory (Convai); counted
    only where such a session exists at all."""
    if job.connection_id is None or not Conversation.objects.filter(
            connection_id=job.connection_id, flags__in_memory=True).exists():
        return 0
    return going.filter(conversation__flags__in_memory=True).count()


def _held_job(detail: str) -> int | None:
    """The unfinished job a HELD reason names."""
    if detail.startswith(HELD) and detail[len(HELD):].isdigit():
        return int(detail[len(HELD):])
    return None
