"""Findings screen: the secrets and personal data the detectors saw in mirrored messages,
counted by kind and connection, listed with a masked snippet and a link to the message in
its transcript; a value is shown in clear only when someone asks, which is audited. "Erase
these messages" turns the filter into an ordinary erasure request (preview, approval,
cancel window, receipt)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from ..erasure import freeze
from ..forms import FindingFilter
from ..lib.paging import paginate
from ..mirror import findings
from ..models import Connection, Finding, Message
from ..models.findings import Kind
from ..team import audit
from ..team.roles import Role, role_of
from .common import is_fragment, masked, require_role

CONTEXT = 60  # characters of the message shown on each side of a finding


def _filter(request: HttpRequest, data: Any) -> tuple[FindingFilter, dict[str, Any]]:
    # A page without a filter shows everything; a form posted without one means the same.
    bound = data if data or request.method == "POST" else None
    form = FindingFilter(Connection.objects.visible_to(request.user), bound)
    return form, (form.cleaned_data if form.is_valid() else {})


def finding_list(request: HttpRequest) -> HttpResponse:
    form, data = _filter(request, request.GET)
    qs = findings.matching(request.user, data)
    page = paginate(qs.select_related("message", "conversation__character", "connection"),
                    "found_at", descending=True, size=settings.LETHE_PAGE_SIZE,
                    after=request.GET.get("after"), before=request.GET.get("before"))
    nearby: dict[int, list[Finding]] = {}
    for other in Finding.objects.filter(message_id__in=[f.message_id for f in page.rows]):
        nearby.setdefault(other.message_id, []).append(other)
    rows = [{"finding": f, "snippet": _snippet(f, nearby.get(f.message_id, [f]))}
            for f in page.rows]
    params = request.GET.copy()
    for key in ("after", "before"):
        params.pop(key, None)
    labels = dict(Kind.choices)
    by_kind = findings.matching(request.user, {**data, "kind": None}).values("kind").annotate(
        n=Count("id")).order_by("-n", "kind")
    by_connection = findings.matching(request.user, {**data, "connection": None}).values(
        "connection_id", "connection__label").annotate(n=Count("id")).order_by(
        "-n", "connection__label")
    return render(request, "findings/list.html", {
        "form": form, "page": page, "rows": rows, "params": params.urlencode(),
        "filter_params": [(k, v) for k, v in params.items() if v],
        "by_kind": [{"kind": r["kind"], "label": labels.get(r["kind"], r["kind"]), "n": r["n"]}
                    for r in by_kind],
        "by_connection": list(by_connection),
        "total": qs.count(),
        "can_erase": role_of(request.user) >= Role.OPERATOR,
    })


def _snippet(finding: Finding, in_message: list[Finding]) -> Any:
    """The text around ``finding``, every finding in it masked."""
    text = finding.message.text
    start, end = max(0, finding.start - CONTEXT), min(len(text), finding.end + CONTEXT)
    # Never cut through another finding: a half shown would be half in clear.
    for other in in_message:
        if other.start < start < other.end:
            start = other.start
        if other.start < end < other.end:
            end = other.end
    shifted = [Finding(pk=f.pk, kind=f.kind, preview=f.preview, start=f.start - start,
                       end=f.end - start)
               for f in in_message if f.start >= start and f.end <= end]
    return {"before": start > 0, "text": masked(text[start:end], shifted,
                                                current=finding.pk), "after": end < len(text)}


def visible_finding(request: HttpRequest, pk: int) -> Finding:
    return get_object_or_404(Finding.objects.visible_to(request.user).select_related(
        "message", "conversation"), pk=pk)


@require_POST
def finding_reveal(request: HttpRequest, pk: int) -> HttpResponse:
    """Show one finding's value in clear, in its message; recorded in the audit trail
    (which names the finding, never the value)."""
    finding = visible_finding(request, pk)
    audit.record(request.user, audit.Action.FINDING_REVEALED, finding, request,
                 kind=finding.kind, detector=finding.detector,
                 conversation=finding.conversation_id, message=finding.message_id)
    context = {"finding": finding,
               "text": masked(finding.message.text, list(finding.message.findings.all()),
                              revealed=finding.pk)}
    if is_fragment(request):
        return render(request, "findings/reveal.html#text", context)
    return render(request, "findings/reveal.html", context)


@require_POST
@require_role(Role.OPERATOR, lookup=lambda request, pk: visible_finding(request, pk))
def finding_dismiss(request: HttpRequest, pk: int) -> HttpResponse:
    """Dismiss a finding (nothing to erase: a test card, a public address), or reopen it
    ("reopen=1"); audited either way."""
    finding = visible_finding(request, pk)
    reopen = request.POST.get("reopen") == "1"
    finding.dismissed_at = None if reopen else timezone.now()
    finding.dismissed_by_id = None if reopen else request.user.pk
    finding.save(update_fields=["dismissed_at", "dismissed_by"])
    audit.record(request.user, audit.Action.FINDING_DISMISSED, finding, request,
                 kind=finding.kind, dismissed=not reopen, message=finding.message_id)
    back = request.POST.get("back", "")
    # Only a path of this site: never an address someone slipped into the form.
    if not back.startswith("/findings/") or "//" in back:
        back = reverse("findings")
    return redirect(back)


@require_POST
@require_role(Role.OPERATOR)
def findings_erase(request: HttpRequest) -> HttpResponse:
    form, data = _filter(request, request.POST)
    query = {k: str(v) for k, v in request.POST.items() if k in FindingFilter.base_fields and v}
    back = redirect(reverse("findings") + ("?" + urlencode(query) if query else ""))
    if not form.is_valid():
        messages.error(request, "The filter of that selection is not valid; nothing was chosen.")
        return back
    chosen = Message.objects.filter(pk__in=findings.matching(request.user, data).values(
        "message_id"))
    try:
        request_id = freeze.findings(request.user, chosen, findings.scope_of(data))
    except freeze.SelectionError as exc:
        messages.error(request, str(exc))
        return back
    return redirect("erase_preview", request_id=request_id)
