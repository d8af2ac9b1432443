"""Jobs: the list; one job's page, whose status block the browser polls (same URL); the
actions people take on a job; and its receipt as a page and as JSON."""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from ..erasure import lifecycle, preview
from ..erasure.approvers import approvers, can_approve
from ..erasure.progress import progress
from ..erasure.receipts import receipt
from ..models import ErasureItem, ErasureJob
from ..models.jobstate import IllegalTransition, allowed
from ..team import audit
from ..team.roles import Role, role_of
from .common import is_fragment, require_role


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


@require_role(Role.APPROVER)
def approvals(request: HttpRequest) -> HttpResponse:
    """Erasures waiting for approval that this person can see: the ones they may approve,
    and their own, which wait for someone else."""
    waiting = ErasureJob.objects.visible_to(request.user).filter(
        status=ErasureJob.Status.AWAITING_APPROVAL).order_by("confirmed_at", "id")
    rows = [{"job": job, "mine": job.requested_by_id == request.user.pk,
             "items": job.items.exclude(state=ErasureItem.State.SKIPPED).count()}
            for job in waiting[:200]]
    return render(request, "jobs/approvals.html", {"rows": rows})


def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ErasureJob.objects.visible_to(request.user), pk=pk)
    state = request.GET.get("state", "")
    items = job.items.select_related("conversation")
    if state in ErasureItem.State.values:
        items = items.filter(state=state)
    can = {event.value for event in allowed(job.status)}
    context = {
        **progress(job),
        "starts_in": max(0, int((job.not_before - timezone.now()).total_seconds()))
        if job.status == ErasureJob.Status.SCHEDULED and job.not_before else None,
        "items": items[:500],
        "state": state,
        "states": ErasureItem.State.choices,
        "can": can,
        "can_approve": "approve" in can and can_approve(request.user, job),
        "siblings": ErasureJob.objects.filter(request=job.request).exclude(pk=job.pk).exists(),
    }
    if job.status == ErasureJob.Status.AWAITING_APPROVAL and job.connection_id:
        context["approvers"] = approvers(job)
        context["approver_group"] = settings.LETHE_ROLE_GROUPS["approver"]
        context["preview"] = preview.summary(job, job.include_pinned)
    if is_fragment(request):
        return render(request, "jobs/detail.html#status", context)
    return render(request, "jobs/detail.html", context)


@require_POST
def job_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    job = get_object_or_404(ErasureJob.objects.visible_to(request.user), pk=pk)
    step = lifecycle.STEPS.get(action)
    if step is None:
        raise Http404("No such action.")
    if role_of(request.user) < step.role:
        return render(request, "403.html", {
            "reason": f"To {action} a job you need the {step.role.label} role."}, status=403)
    try:
        step.call(job, request.user, request.POST.get("reason", ""))
    except (IllegalTransition, lifecycle.NotAllowed) as exc:
        messages.error(request, str(exc))
    else:
        audit.record(request.user, step.audited_as, job, request, step=action)
        messages.success(request, step.done)
    return redirect("job", pk=job.pk)


def job_receipt(request: HttpRequest, pk: int, fmt: str = "html") -> HttpResponse:
    job = get_object_or_404(ErasureJob.objects.visible_to(request.user), pk=pk)
    data = receipt(job)
    if fmt == "json":
        response = HttpResponse(json.dumps(data, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="lethe-receipt-{job.pk}.json"'
        return response
    return render(request, "jobs/receipt.html", {"job": job, "receipt": data})
