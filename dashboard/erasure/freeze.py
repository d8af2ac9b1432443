"""Freezing a selection into draft jobs: one job per connection, one item per conversation
or message, copied in the database (INSERT ... SELECT), as of now. What people then review
is exactly what a confirmed job sends; a later sync or filter change cannot widen it.

Some items are frozen skipped, with the reason: conversations on the keep-list, and what
an unfinished job already holds (no double booking; drafts hold nothing). Pinned messages
are the one choice left open until confirmation ("include pinned messages?"):

- a single pinned message is an item sent only if pinned messages are included;
- a conversation holding pinned messages is frozen both ways: as one whole-conversation
  item, sent only if pinned messages are included, and, where the provider erases single
  messages, as its messages, sent only if pinned messages are kept (the pinned ones among
  them skipped). Confirming keeps the items of the answer given (`lifecycle.confirm`):
  included, the single messages are dropped; kept, the whole-conversation item stays,
  skipped with the reason, beside the messages sent in its place.
"""

from __future__ import annotations

import functools
import operator
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection as db
from django.db import models, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    Exists,
    F,
    JSONField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Concat
from django.utils import timezone

import providers

from ..models import Connection, Conversation, ErasureItem, ErasureJob, Message, MirrorState

State = ErasureItem.State
SentIf = ErasureItem.SentIf
PROTECTED = "Protected (on the keep-list); not sent."
PINNED = "Holds pinned messages; sent whole only if pinned messages are included."
PINNED_MESSAGE = "Pinned message; not sent unless pinned messages are included."
HELD = "Already in unfinished job #"  # + the job's id; not sent twice
NO_LONGER_PRESENT = "No longer present in the mirror (erased or gone since); not sent."
# A job holds its open items until it is finished (retrying a finished one checks again,
# `mark_held`); a draft holds nothing: confirming is what books items.
HOLDING = [ErasureJob.Status.AWAITING_APPROVAL, ErasureJob.Status.SCHEDULED,
           ErasureJob.Status.QUEUED, ErasureJob.Status.RUNNING, ErasureJob.Status.PAUSED]


class SelectionError(Exception):
    """The selection cannot become a job (empty, or nothing erasable in it)."""


def open_items() -> QuerySet[ErasureItem]:
    """Items an unfinished job holds: not frozen again, not confirmed twice."""
    return ErasureItem.objects.filter(state__in=ErasureItem.OPEN, job__status__in=HOLDING)


def _holder(items: QuerySet[ErasureItem]) -> Subquery:
    """The id of an unfinished job holding any of ``items``, as text (or NULL)."""
    return Subquery(items.order_by("job_id").annotate(
        j=Cast("job_id", CharField())).values("j")[:1], output_field=CharField())


def mark_held(items: QuerySet[ErasureItem], mine: Iterable[ErasureJob]) -> int:
    """Skip those of ``items`` that an unfinished job other than ``mine`` holds now: the
    check the freeze made, again at the moment that decides (confirming, retrying), under
    the connection's BOOKING lock. Returns how many it skipped."""
    others = open_items().exclude(job__in=list(mine))
    held = {
        ErasureItem.Kind.CONVERSATION: others.filter(conversation=OuterRef("conversation_id")),
        ErasureItem.Kind.MESSAGE: others.filter(
            Q(message=OuterRef("message_id"))
            | Q(kind=ErasureItem.Kind.CONVERSATION, conversation=OuterRef("conversation_id"))),
    }
    skipped = 0
    for kind, holding in held.items():
        # Skipped only until the answer about pinned messages counts too (`sent_if`): that
        # answer must not bring back what another job holds, so it is settled as held.
        skipped += items.filter(Exists(holding), kind=kind).exclude(
            state=State.SKIPPED, sent_if=SentIf.ALWAYS).update(
            state=State.SKIPPED, settled_at=timezone.now(), sent_if=SentIf.ALWAYS,
            detail=Concat(Value(HELD), _holder(holding), output_field=models.TextField()))
    return skipped


def mark_protected(items: QuerySet[ErasureItem]) -> int:
    """Skip those of ``items`` still to be sent whose conversation is on the keep-list now:
    put there after the freeze, it is not sent either (confirming and every claim of a
    worker check again). What waits on the answer about pinned messages is settled too,
    so that no answer brings it back. Returns how many it skipped."""
    return items.filter(Q(state=State.PENDING) | ~Q(sent_if=SentIf.ALWAYS),
                        conversation__protected=True).update(
        state=State.SKIPPED, settled_at=timezone.now(), detail=PROTECTED,
        sent_if=SentIf.ALWAYS)


def _message_erasers() -> list[str]:
    return [name for name, cls in providers.REGISTRY.items()
            if "message" in cls.capabilities.erase_kinds]


def _held_by(holding: QuerySet[ErasureItem], connections: QuerySet[Any]) -> Any:
    """The unfinished job holding a row (``_holder(holding)``), or a plain NULL when no
    unfinished job holds anything on ``connections`` (the usual case): then the freeze is
    one straight copy, not a lookup per row (most of its cost on 200,000 rows)."""
    if open_items().filter(job__connection_id__in=connections).exists():
        return _holder(holding)
    return Value(None, output_field=CharField())


def conversations(user: Any, chosen: QuerySet[Conversation], scope: dict[str, Any],
                  dry_run: bool = False) -> uuid.UUID:
    """Draft one job per connection holding exactly these conversations, as of now."""
    whole, singles = _conversation_rows(chosen)
    return _draft(user, scope, dry_run, [whole, singles], deciding=[whole])


def _conversation_rows(chosen: QuerySet[Conversation]) -> tuple[QuerySet[Any], QuerySet[Any]]:
    """The whole conversations, and the single messages of those that keep their pinned
    ones (all on the connections of the whole ones)."""
    pinned = Message.objects.filter(conversation=OuterRef("pk"), pinned=True,
                                    mirror_state=MirrorState.PRESENT)
    present = chosen.filter(mirror_state=MirrorState.PRESENT).annotate(
        has_pinned=Exists(pinned),
        held_by=_held_by(open_items().filter(conversation=OuterRef("pk")),
                         chosen.order_by().values("connection_id")),
    )
    whole = present.annotate(
        i_connection=F("connection_id"),
        i_kind=Value(ErasureItem.Kind.CONVERSATION.value),
        i_conv=F("id"),
        i_msg=Cast(Value(None), models.BigIntegerField()),
        i_pid=F("provider_id"),
        i_conv_pid=F("provider_id"),
        i_char=Coalesce(F("character__provider_id"), Value("")),
        i_skip=Case(When(protected=True, then=Value(PROTECTED)),
                    When(held_by__isnull=False, then=Concat(Value(HELD), "held_by")),
                    When(has_pinned=True, then=Value(PINNED)), default=Value("")),
        i_sent_if=Case(When(protected=False, held_by__isnull=True, has_pinned=True,
                            then=Value(SentIf.PINNED_INCLUDED.value)),
                       default=Value(SentIf.ALWAYS.value)),
    )
    # Conversations that keep their pinned messages lose the others, one by one.
    split = present.filter(protected=False, held_by__isnull=True, has_pinned=True,
                           connection__provider__in=_message_erasers())
    singles = Message.objects.filter(conversation__in=split.values("pk"),
                                     mirror_state=MirrorState.PRESENT).annotate(
        **_message_columns(),
        i_skip=Case(When(pinned=True, then=Value(PINNED_MESSAGE)), default=Value("")),
        i_sent_if=Value(SentIf.PINNED_KEPT.value),
    )
    return whole, singles


def messages(user: Any, chosen: QuerySet[Message], scope: dict[str, Any],
             dry_run: bool = False) -> uuid.UUID:
    """Draft jobs for single messages, where the provider can erase single messages."""
    return _draft(user, scope, dry_run, [_message_rows(chosen)])


def findings(user: Any, chosen: QuerySet[Message], scope: dict[str, Any],
             dry_run: bool = False) -> uuid.UUID:
    """Draft jobs for messages holding findings: each message alone where the provider
    erases single messages; elsewhere the whole conversation holding it, as a
    conversation selection would (the preview says so)."""
    whole = Conversation.objects.filter(pk__in=chosen.exclude(
        conversation__connection__provider__in=_message_erasers()).values("conversation_id"))
    singles = _message_rows(chosen)
    conversation_rows = _conversation_rows(whole)
    return _draft(user, scope, dry_run, [singles, *conversation_rows],
                  deciding=[singles, conversation_rows[0]])


def _message_rows(chosen: QuerySet[Message]) -> QuerySet[Any]:
    held = open_items().filter(
        Q(message=OuterRef("pk"))
        | Q(kind=ErasureItem.Kind.CONVERSATION, conversation=OuterRef("conversation_id")))
    rows = chosen.filter(
        mirror_state=MirrorState.PRESENT, conversation__mirror_state=MirrorState.PRESENT,
        conversation__connection__provider__in=_message_erasers(),
    ).annotate(held_by=_held_by(held, chosen.order_by().values(
        "conversation__connection_id"))).annotate(
        **_message_columns(),
        i_skip=Case(When(conversation__protected=True, then=Value(PROTECTED)),
                    When(held_by__isnull=False, then=Concat(Value(HELD), "held_by")),
                    When(pinned=True, then=Value(PINNED_MESSAGE)), default=Value("")),
        i_sent_if=Case(When(conversation__protected=False, held_by__isnull=True, pinned=True,
                            then=Value(SentIf.PINNED_INCLUDED.value)),
                       default=Value(SentIf.ALWAYS.value)),
    )
    return rows


def for_real(user: Any, rehearsed: list[ErasureJob]) -> uuid.UUID:
    """Draft the real erasure of a finished dry run: the very items it froze, sent as the
    dry run said, except what changed since in a way the freeze would have skipped: put on
    the keep-list, pinned (when the dry run kept pinned messages), held by an unfinished
    job, no longer present (erased or gone). The dry run's export counts for it too."""
    if not rehearsed or any(not job.dry_run or job.status != ErasureJob.Status.DONE
                            for job in rehearsed):
        raise SelectionError("Only a finished dry run can be repeated for real.")
    if any(job.connection_id is None for job in rehearsed):
        raise SelectionError("A connection of this dry run was removed since.")
    mine = open_items()
    held_conversation = _holder(mine.filter(conversation=OuterRef("conversation_id")))
    held_message = _holder(mine.filter(
        Q(message=OuterRef("message_id"))
        | Q(kind=ErasureItem.Kind.CONVERSATION, conversation=OuterRef("conversation_id"))))
    present = Q(conversation__mirror_state=MirrorState.PRESENT) & (
        Q(kind=ErasureItem.Kind.CONVERSATION) | Q(message__mirror_state=MirrorState.PRESENT))
    rehearsal = State.WOULD_ERASE
    pinned_now = Q(job__include_pinned=False) & (
        Q(kind=ErasureItem.Kind.MESSAGE, message__pinned=True)
        | Q(kind=ErasureItem.Kind.CONVERSATION, has_pinned=True))
    rows = ErasureItem.objects.filter(job__in=rehearsed).annotate(
        held_by=Case(When(kind=ErasureItem.Kind.CONVERSATION, then=held_conversation),
                     default=held_message),
        has_pinned=Exists(Message.objects.filter(
            conversation=OuterRef("conversation_id"), pinned=True,
            mirror_state=MirrorState.PRESENT)),
    ).annotate(
        i_connection=F("job__connection_id"), i_kind=F("kind"), i_conv=F("conversation_id"),
        i_msg=F("message_id"), i_pid=F("provider_id"), i_conv_pid=F("conversation_provider_id"),
        i_char=F("character_provider_id"),
        i_skip=Case(When(~Q(state=rehearsal), then=F("detail")),
                    When(~present, then=Value(NO_LONGER_PRESENT)),
                    When(conversation__protected=True, then=Value(PROTECTED)),
                    When(held_by__isnull=False, then=Concat(Value(HELD), "held_by")),
                    When(pinned_now & Q(kind=ErasureItem.Kind.MESSAGE),
                         then=Value(PINNED_MESSAGE)),
                    When(pinned_now, then=Value(PINNED)),
                    default=Value(""), output_field=models.TextField()),
        i_sent_if=Value(SentIf.ALWAYS.value),
    )
    first = rehearsed[0]
    request = _draft(user, {**first.scope, "after_dry_run": str(first.request)}, False, [rows])
    for job in rehearsed:
        ErasureJob.objects.filter(request=request, connection=job.live_connection()).update(
            exported_at=job.exported_at, export_sha256=job.export_sha256)
    return request


def _message_columns() -> dict[str, Any]:
    return {
        "i_connection": F("conversation__connection_id"),
        "i_kind": Value(ErasureItem.Kind.MESSAGE.value),
        "i_conv": F("conversation_id"),
        "i_msg": F("id"),
        "i_pid": F("provider_id"),
        "i_conv_pid": F("conversation__provider_id"),
        "i_char": Coalesce(F("conversation__character__provider_id"), Value("")),
    }


# The item columns, and the annotations of a freeze query that fill them, in one order.
_ITEM_COLUMNS = {
    "job_id": "i_job", "kind": "i_kind", "conversation_id": "i_conv",
    "message_id": "i_msg", "provider_id": "i_pid",
    "conversation_provider_id": "i_conv_pid", "character_provider_id": "i_char",
    "idempotency_key": "i_key", "state": "i_state", "detail": "i_skip",
    "sent_if": "i_sent_if", "settled_at": "i_settled", "attempts": "i_attempts",
    "response": "i_response", "updated_at": "i_updated",
}


def _draft(user: Any, scope: dict[str, Any], dry_run: bool, parts: list[QuerySet[Any]],
           deciding: list[QuerySet[Any]] | None = None) -> uuid.UUID:
    """One draft job per connection. Each part is a queryset annotated with the item
    columns (``i_connection`` ... ``i_sent_if``), copied with one INSERT ... SELECT.
    ``deciding``: the parts whose connections are all the parts' connections (default:
    all), so that a part derived from another is not read once more just for that."""
    request = uuid.uuid4()
    now = timezone.now()
    with transaction.atomic():
        if db.vendor == "postgresql":
            # Compiling this one big statement (JIT) costs seconds and saves nothing.
            with db.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
        # Asked per connection (EXISTS), not as the parts' DISTINCT connections: that read
        # every row of the parts once more (a whole scan of a large message table, 0.25 s
        # of a 200,000-item freeze among 2 million messages), where each EXISTS stops at
        # its first row, or at once for a connection the part's filter rules out.
        connection_ids = list(Connection.objects.filter(functools.reduce(operator.or_, [
            Exists(part.filter(i_connection=OuterRef("pk"))) for part in (deciding or parts)])
        ).order_by("pk").values_list("pk", flat=True))
        if not connection_ids:
            raise SelectionError("Nothing to erase: the selection holds nothing still present "
                                 "that the provider can erase.")
        jobs = {}
        for connection in Connection.objects.filter(pk__in=connection_ids).order_by("pk"):
            jobs[connection.pk] = ErasureJob.objects.create(
                request=request, connection=connection, requested_by=user, dry_run=dry_run,
                scope=scope, connection_label=connection.label, provider=connection.provider,
                key_hint=connection.secret_hint)
        for part in parts:
            _insert(part, jobs, now)
        if not sendable_counts(jobs.values()).either:
            raise SelectionError("Nothing to erase: everything selected is protected or "
                                 "already in an unfinished job.")
    return request


def _insert(rows: QuerySet[Any], jobs: dict[int, ErasureJob], now: Any) -> None:
    skipped = ~Q(i_skip="")
    select = rows.annotate(
        i_job=Case(*[When(i_connection=cid, then=Value(job.pk)) for cid, job in jobs.items()],
                   output_field=models.BigIntegerField()),
    ).annotate(
        i_key=Concat(Cast("i_job", CharField()), Value(":"), "i_kind", Value(":"),
                     "i_conv_pid", Value(":"), "i_pid", output_field=CharField()),
        i_state=Case(When(skipped, then=Value(State.SKIPPED.value)),
                     default=Value(State.PENDING.value)),
        i_settled=Case(When(skipped, then=Value(now)),
                       default=Value(None), output_field=DateTimeField()),
        i_attempts=Value(0),
        i_response=Value({}, output_field=JSONField()),
        i_updated=Value(now, output_field=DateTimeField()),
    ).order_by("i_conv", "i_msg")
    sql, params = select.values_list(*_ITEM_COLUMNS.values()).query.sql_with_params()
    with db.cursor() as cursor:
        cursor.execute(f"INSERT INTO {ErasureItem._meta.db_table} "  # noqa: S608  # nosec B608
                       f"({', '.join(_ITEM_COLUMNS)}) {sql}", params)


def sent(include_pinned: bool) -> Q:
    """The items confirming sends, for this answer about pinned messages (once it is given,
    every item is simply pending or skipped)."""
    if include_pinned:
        return Q(state=State.PENDING, sent_if=SentIf.ALWAYS) | Q(sent_if=SentIf.PINNED_INCLUDED)
    return Q(state=State.PENDING, sent_if__in=[SentIf.ALWAYS, SentIf.PINNED_KEPT])


@dataclass(frozen=True)
class Sendable:
    """How many items confirming would send, for either answer about pinned messages."""

    pinned_kept: int
    pinned_included: int
    pinned_choice: bool  # whether the answer changes anything, i.e. whether to ask

    @property
    def either(self) -> int:
        return max(self.pinned_kept, self.pinned_included)

    def total(self, include_pinned: bool) -> int:
        return self.pinned_included if include_pinned else self.pinned_kept


def sendable_counts(jobs: Iterable[ErasureJob]) -> Sendable:
    found = ErasureItem.objects.filter(job__in=list(jobs)).aggregate(
        kept=Count("pk", filter=sent(False)),
        included=Count("pk", filter=sent(True)),
        choice=Count("pk", filter=Q(sent_if=SentIf.PINNED_INCLUDED)),
    )
    return Sendable(found["kept"], found["included"], bool(found["choice"]))
