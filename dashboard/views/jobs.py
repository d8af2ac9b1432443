"""Jobs: the list, and one job's page, whose status block the browser polls (same URL)."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from ..models import Connection, ErasureItem, ErasureJob
from .common import is_fragment


def visible_jobs(request: HttpRequest):  # type: ignore[no-untyped-def]
    return ErasureJob.objects.filter(
        connection__in=Connection.objects.visible_to(request.user)
    ).exclude(status=ErasureJob.Status.DRAFT).select_related("connection", "requested_by")


def job_list(request: HttpRequest) -> HttpResponse:
    jobs = visible_jobs(request)
    if request.GET.get("request"):
        try:
            jobs = jobs.filter(request=uuid.UUID(request.GET["request"]))
        except ValueError:
            jobs = jobs.none()
    return render(request, "jobs/list.html", {"jobs": jobs[:200]})


def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(visible_jobs(request), pk=pk)
    counts = job.counts()
    total = sum(counts.values())
    settled = total - counts["pending"] - counts["in_flight"] - counts["unknown"]
    state = request.GET.get("state", "")
    items = job.items.select_related("conversation")
    if state in ErasureItem.State.values:
        items = items.filter(state=state)
    context = {
        "job": job,
        "counts": [(ErasureItem.State(s).label, s, n) for s, n in counts.items() if n],
        "total": total,
        "settled": settled,
        "percent": int(settled * 100 / total) if total else 100,
        "items": items[:500],
        "state": state,
        "states": ErasureItem.State.choices,
    }
    if is_fragment(request):
        return render(request, "jobs/detail.html#status", context)
    return render(request, "jobs/detail.html", context)
