"""Jobs: the list; one job's page, whose status block the browser polls (same URL); the
actions people take on a job; and its receipt as a page and as JSON."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from ..erasure import lifecycle
from ..erasure.approvers import can_approve
from ..erasure.receipts import receipt
from ..models import ErasureItem, ErasureJob
from ..models.jobstate import IllegalTransition, allowed
from ..team import audit
from ..team.audit import Action
from ..team.roles import Role, role_of
from .common import is_fragment


def job_list(request: HttpRequest) -> HttpResponse:
    jobs = ErasureJob.objects.visible_to(request.user)
    request_id = None
    if request.GET.get("request"):
        try:
            request_id = uuid.UUID(request.GET["request"])
        except ValueError:
            jobs = jobs.none()
        else:
            jobs = jobs.filter(request=request_id)
    return render(request, "jobs/list.html", {"jobs": jobs[:200], "request_id": request_id})


def _eta(job: ErasureJob, settled: int, total: int) -> Any:
    if job.status != ErasureJob.Status.RUNNING or not job.started_at or not settled:
        return None
    elapsed = (timezone.now() - job.started_at).total_seconds()
    return timezone.now() + timedelta(seconds=elapsed / settled * (total - settled))


def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ErasureJob.objects.visible_to(request.user), pk=pk)
    counts = job.counts()
    total = sum(counts.values())
    settled = total - sum(counts[s] for s in ErasureItem.OPEN)
    state = request.GET.get("state", "")
    items = job.items.select_related("conversation")
    if state in ErasureItem.State.values:
        items = items.filter(state=state)
    can = {event.value for event in allowed(job.status)}
    context = {
        "job": job,
        "counts": [(ErasureItem.State(s).label, s, n) for s, n in counts.items() if n],
        "total": total,
        "settled": settled,
        "percent": int(settled * 100 / total) if total else 100,
        "eta": _eta(job, settled, total),
        "starts_in": max(0, int((job.not_before - timezone.now()).total_seconds()))
        if job.status == ErasureJob.Status.SCHEDULED and job.not_before else None,
        "items": items[:500],
        "state": state,
        "states": ErasureItem.State.choices,
        "failed": sum(counts[s] for s in ErasureItem.FAILING),
        "can": can,
        "can_approve": "approve" in can and can_approve(request.user, job),
        "polling": job.status not in (ErasureJob.Status.DONE, ErasureJob.Status.CANCELLED)
        or counts[ErasureItem.State.UNKNOWN] or counts[ErasureItem.State.IN_FLIGHT],
    }
    if is_fragment(request):
        return render(request, "jobs/detail.html#status", context)
    return render(request, "jobs/detail.html", context)


ACTIONS: dict[str, Callable[[ErasureJob, Any], object]] = {
    "approve": lifecycle.approve,
    "cancel": lifecycle.cancel,
    "pause": lifecycle.pause,
    "resume": lifecycle.resume,
    "retry": lifecycle.retry_failed,
    "skip": lifecycle.skip_failed,
}


# Cancelling is the safe direction: anyone who can see the job may do it.
ACTION_ROLES = {"approve": Role.APPROVER, "cancel": Role.VIEWER, "pause": Role.OPERATOR,
                "resume": Role.OPERATOR, "retry": Role.OPERATOR, "skip": Role.OPERATOR}
ACTION_AUDIT = {"approve": Action.ERASURE_APPROVED, "cancel": Action.ERASURE_CANCELLED}


@require_POST
def job_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    job = get_object_or_404(ErasureJob.objects.visible_to(request.user), pk=pk)
    act = ACTIONS.get(action)
    if act is None:
        raise Http404("No such action.")
    needed = ACTION_ROLES[action]
    if role_of(request.user) < needed:
        return render(request, "403.html", {
            "reason": f"To {action} a job you need the {needed.label} role."}, status=403)
    try:
        act(job, request.user)
    except (IllegalTransition, lifecycle.NotAllowed) as exc:
        messages.error(request, str(exc))
    else:
        audit.record(request.user, ACTION_AUDIT.get(action, Action.ERASURE_CHANGED), job,
                     request, step=action)
        messages.success(request, {
            "approve": "Approved.", "cancel": "Cancelled: nothing more will be sent.",
            "pause": "Paused.", "resume": "Resumed.",
            "retry": "Failed items will be tried again.", "skip": "Failed items skipped.",
        }[action])
    return redirect("job", pk=job.pk)


def job_receipt(request: HttpRequest, pk: int, fmt: str = "html") -> HttpResponse:
    job = get_object_or_404(ErasureJob.objects.visible_to(request.user), pk=pk)
    data = receipt(job)
    if fmt == "json":
        response = HttpResponse(json.dumps(data, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="lethe-receipt-{job.pk}.json"'
        return response
    return render(request, "jobs/receipt.html", {"job": job, "receipt": data})
