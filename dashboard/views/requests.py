"""One erasure request, one handle: a request over several connections is one job per
connection, shown together on one page (polled while any is under way), cancelled, paused
or resumed together, with a combined receipt; and a finished dry run is repeated for real
from here on the very items it froze."""

from __future__ import annotations

import json
import uuid

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ..erasure import freeze, lifecycle
from ..erasure.progress import progress
from ..erasure.receipts import combined_receipt
from ..models import ErasureJob
from ..models.jobstate import IllegalTransition, allowed
from ..team import audit
from ..team.roles import Role, role_of
from .common import is_fragment


def request_jobs(request: HttpRequest, request_id: uuid.UUID) -> list[ErasureJob]:
    """The confirmed jobs of one request that this person can see; none is a 404."""
    jobs = list(ErasureJob.objects.visible_to(request.user).filter(
        request=request_id).order_by("connection_label", "id"))
    if not jobs:
        raise Http404("No such erasure request.")
    return jobs


def rehearsal(jobs: list[ErasureJob]) -> bool:
    """A finished dry run, which can be repeated for real."""
    return all(job.dry_run and job.status == ErasureJob.Status.DONE and job.connection_id
               for job in jobs)


def request_detail(request: HttpRequest, request_id: uuid.UUID) -> HttpResponse:
    jobs = request_jobs(request, request_id)
    rows = [progress(job) for job in jobs]
    can = set().union(*({e.value for e in allowed(job.status)} for job in jobs))
    context = {
        "request_id": request_id, "rows": rows, "can": can,
        "dry_run": all(job.dry_run for job in jobs),
        "finished": all(job.finished for job in jobs),
        "polling": any(row["polling"] for row in rows),
        "rehearsal": rehearsal(jobs),
        "would_erase": sum(row["would_erase"] for row in rows),
    }
    if is_fragment(request):
        return render(request, "requests/detail.html#status", context)
    return render(request, "requests/detail.html", context)


# What can be done to a whole request at once (approving stays one job at a time).
TOGETHER = ("cancel", "pause", "resume")


@require_POST
def request_action(request: HttpRequest, request_id: uuid.UUID, action: str) -> HttpResponse:
    jobs = request_jobs(request, request_id)
    if action == "for_real":
        return _for_real(request, jobs)
    if action not in TOGETHER:
        raise Http404("No such action.")
    step = lifecycle.STEPS[action]
    if role_of(request.user) < step.role:
        return render(request, "403.html", {
            "reason": f"To {action} an erasure you need the {step.role.label} role."},
            status=403)
    done = 0
    for job in jobs:
        if action not in {e.value for e in allowed(job.status)}:
            continue  # finished, or already there: the others still get the step
        try:
            step.call(job, request.user, "")
        except (IllegalTransition, lifecycle.NotAllowed):
            continue
        done += 1
        audit.record(request.user, step.audited_as, job, request, step=action,
                     whole_request=True)
    if done:
        messages.success(request, f"{action.capitalize()}: {done} job{'s' * (done != 1)}.")
    else:
        messages.error(request, f"No job of this request can {action} now.")
    return redirect("request", request_id=request_id)


def _for_real(request: HttpRequest, jobs: list[ErasureJob]) -> HttpResponse:
    if role_of(request.user) < Role.OPERATOR:
        return render(request, "403.html", {
            "reason": "To erase you need the operator role."}, status=403)
    try:
        new = freeze.for_real(request.user, jobs)
    except freeze.SelectionError as exc:
        messages.error(request, str(exc))
        return redirect("request", request_id=jobs[0].request)
    messages.info(request, "The dry run's selection, ready to erase for real: review it and "
                           "confirm.")
    return redirect("erase_preview", request_id=new)


def request_receipt(request: HttpRequest, request_id: uuid.UUID, fmt: str = "html"
                    ) -> HttpResponse:
    jobs = request_jobs(request, request_id)
    data = combined_receipt(jobs)
    if fmt == "json":
        response = HttpResponse(json.dumps(data, indent=2), content_type="application/json")
        response["Content-Disposition"] = (
            f'attachment; filename="lethe-receipt-{request_id}.json"')
        return response
    return render(request, "requests/receipt.html", {
        "receipt": data, "request_id": request_id,
        "parts": list(zip(jobs, data["jobs"], strict=True))})
