"""Retention policies at work: what a policy matches, and one scheduled run of it.

A run syncs the connections in scope first (so the age of each conversation is current),
writes a dry-run report of what would go, then freezes and confirms one job per connection
under one request, as the policy's owner. Held-for-approval policies always wait for an
approver; automatic ones go through `lifecycle.confirm`, so the approval threshold and the
cancel window apply exactly as to a hand-made job. If the owner lost the operator role or
access to what the policy names, the run does nothing and records why.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..lib import queue
from ..mirror import selection, sync
from ..models import (
    Connection,
    Conversation,
    ErasureJob,
    Finding,
    Message,
    MirrorState,
    PolicyRun,
    RetentionPolicy,
)
from ..team import audit
from ..team.roles import Role, at_least
from . import freeze, lifecycle

log = logging.getLogger(__name__)
Scope = RetentionPolicy.Scope


def refusal(policy: RetentionPolicy) -> str:
    """Why the owner may not run this policy now; empty when they may."""
    owner = policy.owner
    name = owner.get_username()
    if not owner.is_active:
        return f"{name} is no longer an active user; the policy did nothing."
    if not at_least(owner, Role.OPERATOR):
        return f"{name} no longer has the operator role; the policy did nothing."
    visible = Connection.objects.visible_to(owner)
    if policy.scope == Scope.CONNECTION and not visible.filter(
            pk=policy.connection_id or 0).exists():
        return f"{name} no longer has access to the connection; the policy did nothing."
    if policy.scope == Scope.CHARACTER and (
            policy.character is None
            or not visible.filter(pk=policy.character.connection_id).exists()):
        return f"{name} no longer has access to the character's connection; " \
               "the policy did nothing."
    return ""


def connections_in_scope(policy: RetentionPolicy) -> QuerySet[Connection]:
    qs = Connection.objects.visible_to(policy.owner)
    if policy.scope == Scope.PROVIDER:
        return qs.filter(provider=policy.provider)
    if policy.scope == Scope.CONNECTION:
        return qs.filter(pk=policy.connection_id or 0)
    if policy.scope == Scope.CHARACTER:
        return qs.filter(characters=policy.character_id)
    return qs


def _phrase(text: str) -> Q:
    return Q(title__icontains=text) | Q(Exists(selection.message_hits(text)))


def _candidates(policy: RetentionPolicy, leave_out: Collection[int] = ()
                ) -> QuerySet[Conversation]:
    """Present conversations in the policy's scope, old enough, with its keywords; those an
    unfinished job holds included."""
    cutoff = timezone.now() - timedelta(days=policy.older_than_days)
    qs = Conversation.objects.visible_to(policy.owner).filter(
        connection__in=connections_in_scope(policy), mirror_state=MirrorState.PRESENT,
    ).exclude(connection_id__in=list(leave_out))
    if policy.finding_kind:
        # Conversations holding such a message: the age is the message's own.
        qs = qs.filter(Exists(finding_messages(policy).filter(conversation=OuterRef("pk"))))
    else:
        qs = qs.annotate(age_at=Coalesce("last_message_at", "started_at", "synced_at")
                         ).filter(age_at__lt=cutoff)
    if policy.scope == Scope.CHARACTER:
        qs = qs.filter(character_id=policy.character_id or 0)
    keywords = policy.keyword_list()
    if keywords:
        wanted = Q()
        for word in keywords:
            wanted |= _phrase(word)
        qs = qs.filter(wanted)
    for word in policy.keep_keyword_list():
        qs = qs.exclude(_phrase(word))
    return qs


def _held(items: QuerySet[Any]) -> Exists:
    return Exists(items.filter(conversation=OuterRef("pk")))


def matching(policy: RetentionPolicy, leave_out: Collection[int] = ()
             ) -> QuerySet[Conversation]:
    """Present conversations the policy would erase now, protected ones included (the
    freeze turns those into skipped items, with the reason, like any hand-made job).
    `leave_out`: connections whose sync failed in this run."""
    # Already in a job that is waiting or under way (e.g. yesterday's run, still held for
    # approval): not frozen again, so held jobs do not pile up one per run.
    return _candidates(policy, leave_out).exclude(_held(freeze.open_items()))


def finding_messages(policy: RetentionPolicy, within: QuerySet[Conversation] | None = None
                     ) -> QuerySet[Message]:
    """For a policy on findings: the present messages holding a finding of its kind, sent
    before its age (`within`: only in these conversations)."""
    cutoff = timezone.now() - timedelta(days=policy.older_than_days)
    found = Message.objects.filter(
        Exists(Finding.objects.filter(message=OuterRef("pk"), kind=policy.finding_kind,
                                      dismissed_at__isnull=True)),
        Q(created_at__lt=cutoff) | Q(created_at__isnull=True),
        mirror_state=MirrorState.PRESENT)
    return found if within is None else found.filter(conversation__in=within)


def would_erase(policy: RetentionPolicy, viewer: Any) -> QuerySet[Conversation]:
    """What the policy would send now, seen through both pairs of eyes: the owner's scope,
    but never more than ``viewer`` may see (invariant 5 in docs/architecture.md)."""
    return matching(policy).filter(
        protected=False, pk__in=Conversation.objects.visible_to(viewer).values("pk"))


def standing(policy: RetentionPolicy, viewer: Any) -> dict[str, int]:
    """What is old enough for the policy, as ``viewer`` may see it, in three counts: what
    a run would erase now (``would``), and what unfinished jobs already hold, apart, so
    that sessions waiting for approval never read as "nothing is old enough"."""
    held = freeze.open_items()
    seen = _candidates(policy).filter(
        protected=False, pk__in=Conversation.objects.visible_to(viewer).values("pk"),
    ).annotate(held=_held(held), awaiting=_held(held.filter(
        job__status=ErasureJob.Status.AWAITING_APPROVAL)))
    # One query for the three counts: the overview asks this of every policy.
    return seen.aggregate(
        would=Count("pk", filter=Q(held=False)),
        awaiting_approval=Count("pk", filter=Q(awaiting=True)),
        under_way=Count("pk", filter=Q(held=True, awaiting=False)))


def report(policy: RetentionPolicy, leave_out: Collection[int] = ()) -> dict[str, Any]:
    """The dry-run report: per connection, what would be sent and what would be skipped."""
    rows = []
    qs = matching(policy, leave_out)
    for connection in connections_in_scope(policy).order_by("label", "id"):
        mine = qs.filter(connection=connection)
        protected = mine.filter(protected=True).count()
        total = mine.count()
        if total:
            rows.append({"connection": connection.pk, "label": connection.label,
                         "provider": connection.provider, "conversations": total - protected,
                         "protected": protected})
    return {"older_than_days": policy.older_than_days,
            "conversations": sum(r["conversations"] for r in rows),
            "protected": sum(r["protected"] for r in rows), "connections": rows}


def queue_due_runs(now: Any = None) -> int:
    """Queue a run of every due policy, and send again the runs still queued after a while
    (their message was lost; a run is claimed only once). Returns how many were sent."""
    ids = _claim_due(now) + _lost_runs()
    for pk in ids:
        queue.send(queue.POLICY, pk)
    return len(ids)


def _claim_due(now: Any = None) -> list[int]:
    """Claim every enabled policy that is due and create its queued run. Row locks keep two
    beats from claiming one policy."""
    now = now or timezone.now()
    runs: list[int] = []
    with transaction.atomic():
        due = RetentionPolicy.objects.select_for_update(skip_locked=True).filter(
            Q(next_run_at__isnull=True) | Q(next_run_at__lte=now), enabled=True)
        for policy in due:
            try:
                with transaction.atomic():
                    policy.next_run_at = now + policy.interval
                    policy.save(update_fields=["next_run_at"])
                    runs.append(PolicyRun.objects.create(policy=policy).pk)
            except Exception as exc:  # one broken policy must not stop the others
                log.exception("could not schedule policy %s", policy.pk)
                RetentionPolicy.objects.filter(pk=policy.pk).update(
                    next_run_at=now + timedelta(days=1))
                PolicyRun.objects.create(
                    policy=policy, status=PolicyRun.Status.FAILED, finished_at=now,
                    note=f"Could not be scheduled ({type(exc).__name__}); tried again in a "
                         "day. Check its settings.")
    return runs


def start_run(policy: RetentionPolicy) -> PolicyRun:
    """A run asked for by a person ("Run now"), queued for a worker; the schedule moves on
    from now."""
    now = timezone.now()
    RetentionPolicy.objects.filter(pk=policy.pk).update(next_run_at=now + policy.interval)
    run = PolicyRun.objects.create(policy=policy)
    queue.send(queue.POLICY, run.pk)
    return run


def perform_run(run_id: int, sync_first: bool = True) -> PolicyRun:
    """Carry out one queued run. A redelivered task finds it no longer queued and stops."""
    claimed = PolicyRun.objects.filter(pk=run_id, status=PolicyRun.Status.QUEUED).update(
        status=PolicyRun.Status.RUNNING, started_at=timezone.now())
    policy_run = PolicyRun.objects.select_related("policy__owner").get(pk=run_id)
    if not claimed:
        return policy_run
    policy = policy_run.policy
    RetentionPolicy.objects.filter(pk=policy.pk).update(last_run_at=timezone.now())
    try:
        _carry_out(policy_run, policy, sync_first)
    except Exception as exc:  # the run row must say what happened, whatever it was
        log.exception("policy run %s failed", run_id)
        _end(policy_run, PolicyRun.Status.FAILED,
             f"Internal error ({type(exc).__name__}); nothing was erased by this run.")
    return policy_run


def _end(policy_run: PolicyRun, status: str, note: str = "") -> None:
    policy_run.status = status
    if note:
        policy_run.note = "\n".join(filter(None, [policy_run.note, note]))
    policy_run.finished_at = timezone.now()
    policy_run.save()


def _carry_out(policy_run: PolicyRun, policy: RetentionPolicy, sync_first: bool) -> None:
    reason = refusal(policy)
    if reason:
        _end(policy_run, PolicyRun.Status.REFUSED, reason)
        return
    notes: list[str] = []
    failed: set[int] = set()
    if sync_first:
        notes, failed = _sync(policy)
    policy_run.note = "\n".join(notes)
    # Checked again: the sync took time, and access may have gone meanwhile.
    reason = refusal(policy)
    if reason:
        _end(policy_run, PolicyRun.Status.REFUSED, reason)
        return
    policy_run.report = report(policy, failed)
    if not policy_run.report["conversations"]:
        _end(policy_run, PolicyRun.Status.NOTHING)
        return
    scope = {"policy": policy.pk, "policy_name": policy.name, "policy_run": policy_run.pk,
             "older_than_days": policy.older_than_days}
    request = None
    try:
        chosen = matching(policy, failed)
        if policy.finding_kind:
            # Those messages alone where the provider erases single messages.
            request = freeze.findings(policy.owner, finding_messages(policy, chosen),
                                      {**scope, "finding_kind": policy.finding_kind})
        else:
            request = freeze.conversations(policy.owner, chosen, scope)
        drafts = list(ErasureJob.objects.filter(request=request))
        # Held for approval whatever the threshold when the policy says so (its owner
        # cannot approve it); else the threshold and cancel window of any job apply.
        jobs = lifecycle.confirm(drafts, dry_run=False, hold_for_approval=(
            policy.mode == RetentionPolicy.Mode.APPROVE))
    except freeze.SelectionError as exc:
        if request is not None:  # its drafts would sit there for nobody to review
            ErasureJob.objects.filter(request=request, status=ErasureJob.Status.DRAFT
                                      ).delete()
        _end(policy_run, PolicyRun.Status.NOTHING, str(exc))
        return
    for job in jobs:
        audit.record(policy.owner, audit.Action.ERASURE_REQUESTED, job, policy=policy.pk,
                     policy_run=policy_run.pk, dry_run=False, items=job.items.count(),
                     status=job.status)
    policy_run.request = request
    _end(policy_run, PolicyRun.Status.CREATED)


def _sync(policy: RetentionPolicy) -> tuple[list[str], set[int]]:
    """Sync each connection in scope in this worker; a failed one is left out of the run,
    since its mirror may be behind the provider (and the provider is failing anyway)."""
    notes: list[str] = []
    failed: set[int] = set()
    for connection in connections_in_scope(policy):
        if connection.status == Connection.Status.PAUSED:
            notes.append(f"{connection.label}: paused, not synced.")
            continue
        if sync.in_progress(connection) is not None:
            notes.append(f"{connection.label}: a sync was already under way; used the mirror.")
            continue
        result = sync.perform_sync(sync.start(connection, policy.owner).pk)
        if result.status != result.Status.OK:
            notes.append(f"{connection.label}: sync failed ({result.error}); left out.")
            failed.add(connection.pk)
    return notes, failed


def _lost_runs(older_than: timedelta = timedelta(minutes=10)) -> list[int]:
    """Runs queued long ago that no worker claimed (a lost task message)."""
    return list(PolicyRun.objects.filter(
        status=PolicyRun.Status.QUEUED, created_at__lt=timezone.now() - older_than
    ).values_list("pk", flat=True))
