"""The overview, the landing page: totals, then per provider and connection how much is held
and how old it is (an SVG bar chart drawn here, no script), the last sync with its progress
while one runs and a Sync button, failing connections, running and waiting jobs, what the
retention policies will remove next, and the next step wherever something is still empty.
While a sync runs, the live region re-renders itself from this view every two seconds."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from django.db.models import Count, Max, Min, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from ..erasure import retention
from ..mirror import findings
from ..models import (
    Character,
    Connection,
    Conversation,
    ErasureJob,
    MirrorState,
    RetentionPolicy,
    SyncRun,
)
from ..team.roles import Role, role_of

BUCKETS = [("< 30 d", "age-new"), ("30–90 d", "age-recent"), ("90–365 d", "age-old"),
           ("older", "age-oldest")]
# Chart geometry, in SVG user units (the SVG scales to its box in CSS).
BAR_W, GAP, TOP, BASE, WIDTH, HEIGHT = 52, 12, 18, 96, 4 * 64 + 8, 116
WAITING = [ErasureJob.Status.AWAITING_APPROVAL, ErasureJob.Status.SCHEDULED,
           ErasureJob.Status.QUEUED, ErasureJob.Status.RUNNING, ErasureJob.Status.PAUSED]


def age_stats(connections: Any) -> dict[int, dict[str, Any]]:
    """Per connection: conversations and messages held, and conversations per age bucket
    (by the last message, else the start)."""
    now = timezone.now()
    d30, d90, d365 = (now - timedelta(days=n) for n in (30, 90, 365))
    rows = Conversation.objects.filter(
        connection__in=connections, mirror_state=MirrorState.PRESENT,
    ).annotate(age_at=Coalesce("last_message_at", "started_at")).values(
        "connection_id").annotate(
        conversations=Count("id"), held=Sum("message_count"), oldest=Min("age_at"),
        b0=Count("id", filter=Q(age_at__gte=d30)),
        b1=Count("id", filter=Q(age_at__lt=d30, age_at__gte=d90)),
        b2=Count("id", filter=Q(age_at__lt=d90, age_at__gte=d365)),
        b3=Count("id", filter=Q(age_at__lt=d365)),
    ).order_by()
    return {row["connection_id"]: dict(row) for row in rows}


def chart(counts: list[int]) -> dict[str, Any]:
    """Bar geometry for the template: heights scaled to the largest bucket."""
    top = max(counts) or 1
    bars = []
    for i, ((label, css), n) in enumerate(zip(BUCKETS, counts, strict=True)):
        h = round((BASE - TOP) * n / top)
        x = GAP // 2 + i * (BAR_W + GAP)
        bars.append({"label": label, "css": css, "n": n, "x": x, "w": BAR_W,
                     "y": BASE - h, "h": h, "mid": x + BAR_W // 2, "ny": BASE - h - 4})
    return {"bars": bars, "width": WIDTH, "height": HEIGHT, "base": BASE,
            "label_y": BASE + 14}


def latest_runs(connections: Any) -> dict[int, SyncRun]:
    """Each connection's newest sync run (one query)."""
    newest = SyncRun.objects.filter(connection=OuterRef("connection")).order_by(
        "-created_at", "-id").values("pk")[:1]
    return {run.connection_id: run for run in SyncRun.objects.filter(
        connection__in=connections, pk=Subquery(newest))}


def live_key(user: Any) -> str:
    """What the overview's figures follow, in a few cheap aggregates: connections, syncs
    and jobs started, finished or moved on. An idle overview asks with the key it was drawn
    with, and is redrawn only once this changes (work started in another tab, say)."""
    connections = Connection.objects.visible_to(user)
    health = connections.aggregate(n=Count("pk"), last=Max("pk"),
                                   ok=Count("pk", filter=Q(status=Connection.Status.OK)),
                                   erring=Count("pk", filter=~Q(last_error="")))
    runs = SyncRun.objects.filter(connection__in=connections).aggregate(
        last=Max("pk"), finished=Max("finished_at"), n=Count("pk"))
    jobs = ErasureJob.objects.visible_to(user).aggregate(
        last=Max("pk"), finished=Max("finished_at"), n=Count("pk"),
        **{str(status): Count("pk", filter=Q(status=status)) for status in WAITING})
    parts = [*health.values(), *runs.values(), *jobs.values()]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def overview(request: HttpRequest) -> HttpResponse:
    key = live_key(request.user)
    if request.GET.get("since") == key:
        return HttpResponse(status=204)  # nothing moved: HTMX leaves the page as it is
    last_run = SyncRun.objects.filter(connection=OuterRef("pk")).order_by("-created_at", "-id")
    connections = Connection.objects.visible_to(request.user).annotate(
        last_run_status=Subquery(last_run.values("status")[:1]),
        last_run_error=Subquery(last_run.values("error")[:1]),
    ).order_by("provider", "label", "id")
    stats = age_stats(connections)
    runs = latest_runs(connections)
    providers: dict[str, dict[str, Any]] = {}
    failing = []
    for connection in connections:
        row = stats.get(connection.pk, {})
        counts = [row.get(f"b{i}", 0) for i in range(4)]
        entry = {"connection": connection, "conversations": row.get("conversations", 0),
                 "messages": row.get("held") or 0, "oldest": row.get("oldest"),
                 "chart": chart(counts), "run": runs.get(connection.pk)}
        group = providers.setdefault(connection.provider, {
            "sample": connection, "connections": [], "conversations": 0, "messages": 0,
            "counts": [0, 0, 0, 0]})
        group["connections"].append(entry)
        group["conversations"] += entry["conversations"]
        group["messages"] += entry["messages"]
        group["counts"] = [a + b for a, b in zip(group["counts"], counts, strict=True)]
        if (connection.status not in (Connection.Status.OK, Connection.Status.UNCHECKED)
                or connection.last_error
                or getattr(connection, "last_run_status", "") == SyncRun.Status.FAILED):
            failing.append(connection)
    for group in providers.values():
        group["chart"] = chart(group["counts"])
    policies = []
    for policy in RetentionPolicy.objects.visible_to(request.user).filter(
            enabled=True).select_related("owner", "connection", "character").order_by(
            "next_run_at", "id")[:10]:
        policies.append({"policy": policy, **retention.standing(policy, request.user)})
    jobs = ErasureJob.objects.visible_to(request.user)
    groups = list(providers.values())
    totals = {
        "connections": len(connections),
        "characters": Character.objects.filter(connection__in=connections,
                                               mirror_state=MirrorState.PRESENT).count(),
        "conversations": sum(g["conversations"] for g in groups),
        "messages": sum(g["messages"] for g in groups),
        "jobs_open": jobs.filter(status__in=WAITING).count(),
        "jobs": jobs.count(),
    }
    return render(request, "overview/index.html", {
        "providers": groups,
        "failing": failing,
        "jobs": jobs.filter(status__in=WAITING).order_by("-created_at")[:20],
        "policies": policies,
        "has_connections": bool(connections),
        "totals": totals,
        "never_synced": [c for c in connections if c.pk not in runs],
        "syncing": any(not run.finished for run in runs.values()),
        "may_sync": role_of(request.user) >= Role.OPERATOR,
        "open_findings": findings.matching(request.user, {}).count(),
        "live_key": key,
    })

