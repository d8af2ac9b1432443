"""Erase selected → preview → confirm. The preview already holds the frozen items: what
people review is exactly what a confirmed job sends, whatever syncs happen in between."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from ..erasure import lifecycle
from ..forms import ConversationFilter
from ..mirror import exports, selection
from ..models import Connection, Conversation, ErasureItem, ErasureJob, Message
from ..team import audit
from ..team.roles import Role
from .common import parse_ids, require_role


@require_POST
@require_role(Role.OPERATOR)
def erase_selected(request: HttpRequest) -> HttpResponse:
    connections = Connection.objects.visible_to(request.user)
    form = ConversationFilter(connections, request.POST)
    if not form.is_valid():
        messages.error(request, "The filter of that selection is not valid; nothing was chosen.")
        return redirect("conversations")
    if request.POST.getlist("message"):
        return _erase_messages(request)
    if request.POST.get("select_all") == "1":
        chosen = selection.matching(request.user, form.cleaned_data)
        scope = {"select_all": True, "filter": selection.scope_of(form.cleaned_data)}
    else:
        try:
            ids = parse_ids(request.POST.getlist("conversation"))
        except ValueError:
            messages.error(request, "The selection held an id that is not a number.")
            return redirect("conversations")
        # Only ids this person can see count; others are silently not theirs to erase.
        chosen = Conversation.objects.visible_to(request.user).filter(pk__in=ids)
        scope = {"select_all": False, "selected": len(ids)}
    try:
        request_id = lifecycle.freeze(request.user, chosen, scope)
    except lifecycle.SelectionError as exc:
        messages.error(request, str(exc))
        return redirect("conversations")
    return redirect("erase_preview", request_id=request_id)


def _erase_messages(request: HttpRequest) -> HttpResponse:
    try:
        ids = parse_ids(request.POST.getlist("message"))
    except ValueError:
        messages.error(request, "The selection held an id that is not a number.")
        return redirect("conversations")
    chosen = Message.objects.filter(
        conversation__in=Conversation.objects.visible_to(request.user), pk__in=ids
    )
    try:
        request_id = lifecycle.freeze_messages(request.user, chosen,
                                             {"messages": True, "selected": len(ids)})
    except lifecycle.SelectionError as exc:
        messages.error(request, str(exc))
        back = request.POST.get("back", "")
        return redirect("transcript", pk=int(back)) if back.isdigit() else redirect("conversations")
    return redirect("erase_preview", request_id=request_id)


def _draft_jobs(request: HttpRequest, request_id: uuid.UUID) -> list[ErasureJob]:
    jobs = list(
        ErasureJob.objects.filter(
            request=request_id, requested_by_id=request.user.pk,
            connection__in=Connection.objects.visible_to(request.user),
        ).select_related("connection").order_by("connection__label", "id")
    )
    if not jobs:
        raise Http404("No such erasure request.")
    return jobs


@require_http_methods(["GET", "POST"])
@require_role(Role.OPERATOR, lookup=lambda request, request_id: _draft_jobs(request, request_id))
def erase_preview(request: HttpRequest, request_id: uuid.UUID) -> HttpResponse:
    jobs = _draft_jobs(request, request_id)
    if any(job.status != ErasureJob.Status.DRAFT for job in jobs):
        return redirect(_landing(jobs))
    total = sum(lifecycle.sendable(job) for job in jobs)
    if request.method == "POST":
        dry_run = request.POST.get("mode") != "erase"
        if (not dry_run and total > settings.LETHE_TYPED_CONFIRM_THRESHOLD
                and request.POST.get("typed_count", "").strip() != str(total)):
            messages.error(request, f"Type {total} to confirm erasing {total} items.")
            return redirect("erase_preview", request_id=request_id)
        confirmed = lifecycle.confirm(jobs, dry_run=dry_run,
                                    include_pinned=request.POST.get("include_pinned") == "1")
        for job in confirmed:
            audit.record(request.user, audit.Action.ERASURE_REQUESTED, job, request,
                         dry_run=dry_run, items=job.items.count(), status=job.status)
        if any(j.status == ErasureJob.Status.AWAITING_APPROVAL for j in confirmed):
            messages.info(request, "Confirmed. It now waits for an approver; nothing is sent "
                                   "before then.")
        else:
            messages.success(request, f"{'Dry run' if dry_run else 'Erasure'} confirmed.")
        return redirect(_landing(confirmed or jobs))
    previews = [_preview(job) for job in jobs]
    return render(request, "erase/preview.html", {
        "previews": previews, "total": total, "request_id": request_id,
        "exported": all(job.exported_at for job in jobs),
        "needs_approval": lifecycle.needs_approval(jobs, total),
        "typed": total > settings.LETHE_TYPED_CONFIRM_THRESHOLD,
        "pinned_skipped": sum(p["pinned"] for p in previews),
        "cancel_window": settings.LETHE_CANCEL_WINDOW,
    })


def _preview(job: ErasureJob) -> dict[str, Any]:
    items = job.items.select_related("conversation__character")
    sent = items.exclude(state=ErasureItem.State.SKIPPED)
    kinds = dict(sent.values_list("kind").annotate(n=Count("id")).order_by())
    skipped = items.filter(state=ErasureItem.State.SKIPPED)
    return {
        "job": job,
        "count": sum(kinds.values()),
        "conversations": kinds.get("conversation", 0),
        "messages": kinds.get("message", 0),
        "characters": sent.values("conversation__character__name")
        .annotate(n=Count("id")).order_by("-n", "conversation__character__name"),
        "sample": sent.order_by("id")[:10],
        "in_memory": sent.filter(conversation__flags__in_memory=True).count(),
        "protected": skipped.filter(detail=lifecycle.PROTECTED).count(),
        "pinned": skipped.filter(detail__in=[lifecycle.PINNED, lifecycle.PINNED_MESSAGE]).count(),
        "capabilities": job.connection.provider_class.capabilities,
    }


@require_role(Role.OPERATOR,
              lookup=lambda request, request_id, fmt: _draft_jobs(request, request_id))
def erase_export(request: HttpRequest, request_id: uuid.UUID, fmt: str) -> StreamingHttpResponse:
    if fmt not in ("jsonl", "csv"):
        raise Http404("Exports are JSON Lines or CSV.")
    jobs = _draft_jobs(request, request_id)
    for job in jobs:
        audit.record(request.user, audit.Action.EXPORT_DOWNLOADED, job, request, format=fmt)
    content_type = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    response = StreamingHttpResponse(exports.stream(jobs, fmt), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="lethe-export-{request_id}.{fmt}"'
    return response


def _landing(jobs: list[ErasureJob]) -> str:
    if len(jobs) == 1:
        return reverse("job", args=[jobs[0].pk])
    return reverse("jobs") + f"?request={jobs[0].request}"
