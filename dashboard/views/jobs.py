"""Jobs: the list; one job's page, whose status block the browser polls (same URL); the
actions people take on a job; and its receipt as a page and as JSON."""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from ..erasure import lifecycle, preview
from ..erasure.approvers import approvers, can_approve
from ..erasure.progress import progress
from ..erasure.receipts import receipt
from ..lib import labels
from ..models import ErasureItem, ErasureJob, RetentionPolicy
from ..models.jobstate import IllegalTransition, allowed
from ..team import audit
from ..team.roles import Role, role_of
from .common import is_fragment, require_role

ITEMS_PER_PAGE = 50


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
    policy = None
    if "policy" in request.GET:
        policy = _policy_filter(request)
        jobs = jobs.filter(scope__policy=policy["pk"]) if policy else jobs.none()
    shown = list(jobs[:200])
    return render(request, "jobs/list.html", {
        "rows": [{"job": job, "outcome": outcome} for job, outcome in
                 zip(shown, job_outcomes(shown), strict=True)],
        "request_id": request_id, "policy": policy})


def _policy_filter(request: HttpRequest) -> dict[str, object] | None:
    """The policy named by ?policy=, as far as this person may see it (its name only when
    they see the policy; its jobs are filtered by visibility anyway)."""
    raw = request.GET.get("policy", "")
    if not raw.isdigit():
        return None
    found = RetentionPolicy.objects.visible_to(request.user).filter(pk=int(raw)).first()
    return {"pk": int(raw), "name": found.name if found else None}


def job_outcomes(jobs: list[ErasureJob]) -> list[str]:
    """Each job's outcome as a phrase ("113 verified, 2 failed"), one query for them all."""
    counts: dict[int, dict[str, int]] = {job.pk: {} for job in jobs}
    for row in ErasureItem.objects.filter(job__in=[job.pk for job in jobs]).values(
            "job_id", "state").annotate(n=Count("id")).order_by():
        counts[row["job_id"]][row["state"]] = row["n"]
    return [labels.outcomes(counts[job.pk]) or "no items" for job in jobs]


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
    else:
        state = ""
    page = Paginator(items.order_by("id"), ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    can = {event.value for event in allowed(job.status)}
    context = {
        **progress(job),
        "starts_in": max(0, int((job.not_before - timezone.now()).total_seconds()))
        if job.status == ErasureJob.Status.SCHEDULED and job.not_before else None,
        "items": page,
        "state": state,
        "states": ErasureItem.State.choices,
        "policy": _policy_of(job),
        "can": can,
        "can_approve": "approve" in can and can_approve(request.user, job),
        "siblings": ErasureJob.objects.filter(request=job.request).exclude(pk=job.pk).exists(),
    }
    if job.status == ErasureJob.Status.AWAITING_APPROVAL and job.connection_id:
        context["approvers"] = approvers(job)
        context["approver_group"] = settings.LETHE_ROLE_GROUPS["approver"]
        context["preview"] = preview.summary(job, job.include_pinned)
    # The live status line: the state, and once finished what it came to.
    context["live_rest"] = f": {context['outcome'] or 'no items'}" if job.finished else ""
    context["live_key"] = f"{job.status}{context['live_rest']}"
    context["announce"] = request.GET.get("shown", context["live_key"]) != context["live_key"]
    if is_fragment(request):
        part = "items" if request.GET.get("part") == "items" else "status"
        return render(request, f"jobs/detail.html#{part}", context)
    return render(request, "jobs/detail.html", context)


def _policy_of(job: ErasureJob) -> dict[str, object] | None:
    """The retention policy that made this job, from its scope: its name as it was then,
    and a link while the policy still exists."""
    pk = job.scope.get("policy") if isinstance(job.scope, dict) else None
    if not isinstance(pk, int):
        return None
    return {"pk": pk, "name": job.scope.get("policy_name") or f"#{pk}",
            "exists": RetentionPolicy.objects.filter(pk=pk).exists()}


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
