"""Erase selected → preview → confirm. The preview already holds the frozen items: what
people review is exactly what a confirmed job sends, whatever syncs happen in between."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from .. import erasure, selection
from ..forms import ConversationFilter
from ..models import Connection, ErasureJob, Message


@require_POST
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
            ids = sorted({int(v) for v in request.POST.getlist("conversation")})
        except ValueError:
            messages.error(request, "The selection held an id that is not a number.")
            return redirect("conversations")
        # Only ids this person can see count; others are silently not theirs to erase.
        chosen = selection.visible_conversations(request.user).filter(pk__in=ids)
        scope = {"select_all": False, "selected": len(ids)}
    try:
        request_id = erasure.freeze(request.user, chosen, scope)
    except erasure.SelectionError as exc:
        messages.error(request, str(exc))
        return redirect("conversations")
    return redirect("erase_preview", request_id=request_id)


def _erase_messages(request: HttpRequest) -> HttpResponse:
    try:
        ids = sorted({int(v) for v in request.POST.getlist("message")})
    except ValueError:
        messages.error(request, "The selection held an id that is not a number.")
        return redirect("conversations")
    chosen = Message.objects.filter(
        conversation__in=selection.visible_conversations(request.user), pk__in=ids
    )
    try:
        request_id = erasure.freeze_messages(request.user, chosen,
                                             {"messages": True, "selected": len(ids)})
    except erasure.SelectionError as exc:
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
def erase_preview(request: HttpRequest, request_id: uuid.UUID) -> HttpResponse:
    jobs = _draft_jobs(request, request_id)
    if any(job.status != ErasureJob.Status.DRAFT for job in jobs):
        return redirect(_landing(jobs))
    if request.method == "POST":
        dry_run = request.POST.get("mode") != "erase"
        total = sum(job.items.count() for job in jobs)
        if not dry_run and request.POST.get("typed_count", "").strip() != str(total):
            messages.error(request, f"Type {total} to confirm erasing {total} items.")
            return redirect("erase_preview", request_id=request_id)
        queued = erasure.confirm(jobs, dry_run=dry_run)
        noun = "Dry run" if dry_run else "Erasure"
        messages.success(request, f"{noun} queued: {len(queued)} job(s).")
        return redirect(_landing(queued or jobs))
    previews = []
    for job in jobs:
        items = job.items.select_related("conversation__character")
        characters = (
            items.values("conversation__character__name")
            .annotate(n=Count("id")).order_by("-n", "conversation__character__name")
        )
        kinds = dict(items.values_list("kind").annotate(n=Count("id")).order_by())
        previews.append({
            "job": job,
            "count": sum(kinds.values()),
            "conversations": kinds.get("conversation", 0),
            "messages": kinds.get("message", 0),
            "characters": characters,
            "sample": items.order_by("id")[:10],
            "in_memory": items.filter(conversation__flags__in_memory=True).count(),
            "capabilities": job.connection.provider_class.capabilities,
        })
    total = sum(job.items.count() for job in jobs)
    return render(request, "erase/preview.html",
                  {"previews": previews, "total": total, "request_id": request_id})


def _landing(jobs: list[ErasureJob]) -> str:
    from django.urls import reverse

    if len(jobs) == 1:
        return reverse("job", args=[jobs[0].pk])
    return reverse("jobs") + f"?request={jobs[0].request}"


