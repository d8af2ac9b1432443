"""Erase selected → preview → confirm. The preview already holds the frozen items: what
people review is exactly what a confirmed job sends, whatever syncs happen in between."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from ..erasure import freeze, lifecycle, preview
from ..forms import ConversationFilter
from ..mirror import exports, selection
from ..models import Connection, Conversation, ErasureJob, Message
from ..models.jobstate import IllegalTransition
from ..team import audit
from ..team.roles import Role
from . import selected
from .common import is_fragment, parse_ids, require_role


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
    if request.POST.get("held") == "1":  # the list's selection, held in the session
        held = selected.load(request)
        try:
            selected.apply_page(request, held)
        except ValueError:
            messages.error(request, "The selection held an id that is not a number.")
            return redirect("conversations")
        selected.save(request, held)
        chosen = selected.conversations(request, held)
        # A text filter selected whole is held as its ids (see `selected`), yet was
        # selected whole all the same.
        scope: dict[str, Any] = {"select_all": bool(held.filters or held.used),
                                 "selected": chosen.count()}
    elif request.POST.get("select_all") == "1":
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
        # What was picked and may be erased: an id not theirs (or a stale one) is no pick.
        scope = {"select_all": False, "selected": chosen.count()}
    try:
        request_id = freeze.conversations(request.user, chosen, scope)
    except freeze.SelectionError as exc:
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
        request_id = freeze.messages(request.user, chosen,
                                             {"messages": True, "selected": chosen.count()})
    except freeze.SelectionError as exc:
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
    """The frozen selection, and the decision. The answer about pinned messages changes
    what is sent, so every number on the page follows it (the checkbox re-renders the
    decision), and on confirmation the server recomputes each and holds the person to
    the one they saw."""
    jobs = _draft_jobs(request, request_id)
    if any(job.status != ErasureJob.Status.DRAFT for job in jobs):
        return redirect(_landing(jobs))
    data = request.POST if request.method == "POST" else request.GET
    include_pinned = data.get("include_pinned") == "1"
    counts = freeze.sendable_counts(jobs)
    total = counts.total(include_pinned)
    back = reverse("erase_preview", args=[request_id]) + (
        "?include_pinned=1" if include_pinned else "")
    if request.method == "POST":
        dry_run = data.get("mode") != "erase"
        shown = _shown(data, include_pinned)
        problem = _refusal(data, shown, dry_run)
        if problem:
            messages.error(request, problem)
            return redirect(back)
        try:
            confirmed = lifecycle.confirm(jobs, dry_run=dry_run, include_pinned=include_pinned,
                                          expected=shown)
        except freeze.SelectionError as exc:
            messages.error(request, str(exc))
            return redirect(back)
        except IllegalTransition:  # confirmed meanwhile, by a second click say
            return redirect(_landing(jobs))
        for job in confirmed:
            # The job's own share: a request over several connections is one job each.
            audit.record(request.user, audit.Action.ERASURE_REQUESTED, job, request,
                         dry_run=dry_run,
                         items=freeze.sendable_counts([job]).total(include_pinned),
                         request_items=total, include_pinned=include_pinned,
                         status=job.status)
        if any(j.status == ErasureJob.Status.AWAITING_APPROVAL for j in confirmed):
            messages.info(request, "Confirmed. It now waits for an approver; nothing is sent "
                                   "before then.")
        else:
            messages.success(request, f"{'Dry run' if dry_run else 'Erasure'} confirmed.")
        return redirect(_landing(confirmed or jobs))
    previews = [preview.summary(job, include_pinned) for job in jobs]
    context = {
        "previews": previews,
        # Connections something is sent to: a job whose items are all kept sends nothing.
        "sending_to": sum(1 for p in previews if p["count"]),
        "total": total, "counts": counts, "include_pinned": include_pinned,
        "request_id": request_id,
        "exported": all(job.exported_at for job in jobs),
        "needs_approval": lifecycle.needs_approval(total),
        "typed": total > settings.LETHE_TYPED_CONFIRM_THRESHOLD,
        "cancel_window": settings.LETHE_CANCEL_WINDOW,
    }
    if is_fragment(request):
        return render(request, "erase/preview.html#decision", context)
    return render(request, "erase/preview.html", context)


def _shown(data: Any, include_pinned: bool) -> int | None:
    """The total the page showed, if it showed it for the answer now posted about pinned
    messages (a page shown for the other answer counts as not shown)."""
    if data.get("shown_include_pinned", "") != ("1" if include_pinned else "0"):
        return None
    shown = str(data.get("expected_total", ""))
    return int(shown) if shown.isdigit() else None


def _refusal(data: Any, shown: int | None, dry_run: bool) -> str:
    """Why a confirmation cannot go ahead as posted, or "" when it can. What is sent is
    checked against ``shown`` by `lifecycle.confirm`, which recomputes it."""
    if shown is None:
        return ("The page did not show the numbers for that choice about pinned messages: "
                "review them and confirm again.")
    if (not dry_run and shown > settings.LETHE_TYPED_CONFIRM_THRESHOLD
            and data.get("typed_count", "").strip() != str(shown)):
        return f"Type {shown} to confirm erasing {shown} items."
    return ""


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
    return reverse("request", args=[jobs[0].request])
