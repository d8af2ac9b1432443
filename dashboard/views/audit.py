"""Audit screen: filter the append-only trail, and download it as CSV. Nothing editable."""

from __future__ import annotations

import json
from datetime import datetime, time
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from ..lib import spreadsheet
from ..lib.paging import paginate
from ..models import AuditEvent, Connection, Conversation, ErasureJob, RetentionPolicy
from ..team.roles import Role
from .common import require_role


class AuditFilter(forms.Form):
    action = forms.ChoiceField(required=False,
                               choices=[("", "Any action"), *AuditEvent.Action.choices])
    actor = forms.CharField(required=False, max_length=150, label="Who")
    start = forms.DateField(required=False, label="From",
                            widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To",
                          widget=forms.DateInput(attrs={"type": "date"}))


def _events(request: HttpRequest) -> tuple[AuditFilter, QuerySet[AuditEvent]]:
    form = AuditFilter(request.GET or None)
    data: dict[str, Any] = form.cleaned_data if form.is_valid() else {}
    qs = AuditEvent.objects.all()
    tz = timezone.get_current_timezone()
    if data.get("action"):
        qs = qs.filter(action=data["action"])
    if data.get("actor"):
        qs = qs.filter(actor_name__icontains=data["actor"])
    if data.get("start"):
        qs = qs.filter(at__gte=datetime.combine(data["start"], time.min, tz))
    if data.get("end"):
        qs = qs.filter(at__lte=datetime.combine(data["end"], time.max, tz))
    return form, qs


@require_role(Role.APPROVER)
def audit_list(request: HttpRequest) -> HttpResponse:
    form, qs = _events(request)
    page = paginate(qs, "at", descending=True, size=100, after=request.GET.get("after"),
                    before=request.GET.get("before"))
    params = request.GET.copy()
    for key in ("after", "before"):
        params.pop(key, None)
    links = _links(request, page.rows)
    rows = [{"event": e, "link": links.get((e.object_type, e.object_id)),
             "details": json.dumps(e.details, sort_keys=True)} for e in page.rows]
    return render(request, "audit/list.html",
                  {"form": form, "page": page, "rows": rows, "params": params.urlencode()})


# What an audit event may name, and the page that shows it.
_PAGES: dict[str, tuple[Any, str]] = {
    "connection": (Connection, "connection"),
    "conversation": (Conversation, "transcript"),
    "erasurejob": (ErasureJob, "job"),
    "retentionpolicy": (RetentionPolicy, "policy"),
}


def _links(request: HttpRequest, events: list[AuditEvent]) -> dict[tuple[str, str], str]:
    """Links to what the events name, where the viewer may open it (and it still exists)."""
    wanted: dict[str, set[int]] = {}
    for e in events:
        if e.object_type in _PAGES and e.object_id.isdigit():
            wanted.setdefault(e.object_type, set()).add(int(e.object_id))
    links = {}
    for kind, ids in wanted.items():
        model, page = _PAGES[kind]
        for pk in model.objects.visible_to(request.user).filter(pk__in=ids).values_list(
                "pk", flat=True):
            links[(kind, str(pk))] = reverse(page, args=[pk])
    return links


@require_role(Role.APPROVER)
def audit_csv(request: HttpRequest) -> StreamingHttpResponse:
    _, qs = _events(request)

    # The stored action for filters and scripts, and its label for whoever reads the sheet.
    lines = ([e.at.isoformat(), e.actor_name, e.action, e.object_type, e.object_id,
              e.object_label, json.dumps(e.details, sort_keys=True), e.remote_addr or "",
              e.get_action_display()]
             for e in qs.order_by("at", "id").iterator(chunk_size=2000))
    header = ["at", "who", "action", "object_type", "object_id", "object", "details",
              "remote_addr", "action_label"]
    response = StreamingHttpResponse(spreadsheet.rows(header, lines), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="lethe-audit.csv"'
    return response
