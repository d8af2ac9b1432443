"""Conversations screen (filter, sort, select, paginate) and the transcript of one."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import Count, Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ..forms import ConversationFilter
from ..lib.paging import paginate
from ..mirror import exports, selection
from ..models import Connection, Conversation, ErasureItem, Finding, MirrorState
from ..team import audit
from ..team.roles import Role
from . import selected
from .common import is_fragment, masked, require_role

# The sortable columns, in table order, with the direction a first click sorts them.
COLUMNS = [("character", "Character", ""), ("title", "Conversation", ""),
           ("messages", "Messages", "-"), ("first", "First", "-"), ("last", "Last", "-")]


def conversation_list(request: HttpRequest) -> HttpResponse:
    connections = Connection.objects.visible_to(request.user)
    form = ConversationFilter(connections, request.GET or None)
    if request.GET.get("part") == "character":  # the connection changed: new choices
        return render(request, "conversations/list.html#character-field", {"form": form})
    valid = not form.is_bound or form.is_valid()
    data = form.cleaned_data if form.is_bound and valid else {}
    # A filter in error lists nothing: everything would look like what was asked for.
    qs = (selection.matching(request.user, data) if valid else Conversation.objects.none()
          ).select_related("connection", "character")
    params = request.GET.copy()
    for key in ("after", "before", "part", "count"):
        params.pop(key, None)
    held = selected.load(request)
    query = selected.filter_query(params)
    # Counting every match of a text search costs more than the page itself, so the page
    # comes first and HTMX asks for the count after (or ?count=1, without script).
    counting = {"form": form, "params": params.urlencode(), "filtered": bool(query),
                "all_selected": held.all_selected(query), "total": None, "selectable": None}
    if request.GET.get("part") == "count" or request.GET.get("count") or not valid:
        counting.update(qs.aggregate(
            total=Count("pk"), selectable=Count("pk", filter=Q(mirror_state=MirrorState.PRESENT))))
    if request.GET.get("part") == "count":
        return render(request, "conversations/list.html#match-tools", counting)
    sort = data.get("sort") or "-last"
    ordered, nullable = selection.sorted_by(qs, sort.lstrip("-"))
    page = paginate(ordered, "sort_key", descending=sort.startswith("-"),
                    size=settings.LETHE_PAGE_SIZE, nullable=nullable,
                    after=request.GET.get("after"), before=request.GET.get("before"))
    chosen = selected.conversations(request, held)
    context = {
        **counting,
        "page": page,
        "back": params.urlencode(),
        "chips": _chips(form, data, params),
        "columns": _columns(sort, params),
        "show_connection": not data.get("connection") and len(connections) > 1,
        "has_connections": connections.exists(),
        "held_count": chosen.count(),
        "ticked": set(chosen.filter(pk__in=[c.pk for c in page.rows])
                      .values_list("pk", flat=True)),
    }
    template = "conversations/list.html"
    if is_fragment(request):
        return render(request, f"{template}#results", context)
    return render(request, template, context)


def _without(params: QueryDict, *names: str) -> str:
    rest = params.copy()
    for name in names:
        rest.pop(name, None)
    return rest.urlencode()


def _chips(form: ConversationFilter, data: dict[str, Any], params: QueryDict
           ) -> list[dict[str, str]]:
    """One removable chip per active filter: its name, its value as shown, and the link
    that lists the same without it."""
    chips = []
    for name in ConversationFilter.FILTERS:
        value = data.get(name)
        if value in (None, ""):
            continue
        field = form[name]
        choices = dict(getattr(field.field, "choices", []))
        shown = choices.get(value, value) if choices else value
        if name == "q":
            shown = f"“{value}”"
        chips.append({"label": str(field.label or name.title()), "value": str(shown),
                      "url": f"?{_without(params, name)}"})
    return chips


def _columns(sort: str, params: QueryDict) -> list[dict[str, str]]:
    """Each sortable header: the link that sorts by it (the other way round when it is
    the current sort) and its aria-sort."""
    current, descending = sort.lstrip("-"), sort.startswith("-")
    columns = []
    for key, label, first in COLUMNS:
        if key == current:
            direction = "" if descending else "-"
            aria = "descending" if descending else "ascending"
        else:
            direction, aria = first, ""
        rest = QueryDict(_without(params, "sort"), mutable=True)
        rest["sort"] = direction + key
        columns.append({"key": key, "label": label, "url": f"?{rest.urlencode()}",
                        "aria_sort": aria})
    return columns


def _back(request: HttpRequest) -> str:
    """The list the form was posted from (its filter and sort), never another site."""
    back = QueryDict(request.POST.get("back", ""))
    return reverse("conversations") + (f"?{back.urlencode()}" if back else "")


@require_POST
def selection_change(request: HttpRequest) -> HttpResponse:
    """Tick and untick (the page's boxes), "Select all N matching" and "Clear selection".
    HTMX gets the selection bar back; a plain form post, the list again."""
    held = selected.load(request)
    action = request.POST.get("action", "page")
    back = QueryDict(request.POST.get("back", ""))
    was_whole = held.all_selected(selected.filter_query(back))
    try:
        selected.apply_page(request, held)
    except ValueError:
        messages.error(request, "The selection held an id that is not a number.")
        return redirect(_back(request))
    if action == "all":
        selected.select_all(request, held, selected.filter_query(back))
    elif action == "clear":
        held = selected.Held()
    selected.save(request, held)
    if is_fragment(request):
        bar = render(request, "conversations/list.html#selection-bar",
                     {"held_count": selected.conversations(request, held).count()})
        if was_whole and not held.all_selected(selected.filter_query(back)):
            # "All N matching are selected" no longer holds: the match tools come back
            # (out of band) to count again and offer "Select all" anew.
            bar.content += render(request, "conversations/list.html#match-tools", {
                "form": ConversationFilter(Connection.objects.visible_to(request.user),
                                           back or None),
                "params": back.urlencode(), "total": None, "oob": True}).content
        return bar
    return redirect(_back(request))


@require_POST
def selection_export(request: HttpRequest, fmt: str) -> HttpResponse | StreamingHttpResponse:
    """The selected conversations with their messages, as JSON Lines or CSV."""
    if fmt not in ("jsonl", "csv"):
        raise Http404("Exports are JSON Lines or CSV.")
    held = selected.load(request)
    try:
        selected.apply_page(request, held)
    except ValueError:
        messages.error(request, "The selection held an id that is not a number.")
        return redirect(_back(request))
    selected.save(request, held)
    chosen = selected.conversations(request, held)
    count = chosen.count()
    if not count:
        messages.error(request, "Nothing is selected, so there is nothing to export.")
        return redirect(_back(request))
    audit.record(request.user, audit.Action.EXPORT_DOWNLOADED, None, request, format=fmt,
                 conversations=count)
    content_type = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    response = StreamingHttpResponse(exports.selected(chosen, fmt), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="lethe-selection.{fmt}"'
    return response


def transcript(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_object_or_404(
        Conversation.objects.visible_to(request.user).select_related("connection",
                                                                      "character"),
        pk=pk,
    )
    q = request.GET.get("q", "").strip()[:200]
    erased_by = _erasing_jobs(conversation)
    turns = list(conversation.messages.all().order_by("position"))
    found: dict[int, list[Finding]] = {}
    for finding in conversation.findings.all():
        found.setdefault(finding.message_id, []).append(finding)
    current = request.GET.get("finding", "")
    for turn in turns:
        turn.erased_by = erased_by.get(turn.pk, erased_by.get(None))  # type: ignore[attr-defined]
        # Findings are shown masked, the one linked to marked out; revealing is audited.
        if turn.pk in found:
            turn.found = found[turn.pk]  # type: ignore[attr-defined]
            turn.masked = masked(  # type: ignore[attr-defined]
                turn.text, found[turn.pk], current=int(current) if current.isdigit() else None)
    capabilities = conversation.connection.provider_class.capabilities
    return render(request, "conversations/transcript.html", {
        "conversation": conversation,
        "erased_by": erased_by.get(None),
        "turns": turns,
        "q": q,
        "capabilities": capabilities,
        "can_erase_messages": "message" in capabilities.erase_kinds
        and conversation.mirror_state == MirrorState.PRESENT,
    })


def _erasing_jobs(conversation: Conversation) -> dict[int | None, int]:
    """The job that erased each message of the conversation (key None: the whole of it)."""
    found: dict[int | None, int] = {}
    for kind, message_id, job_id in ErasureItem.objects.filter(
            Q(kind=ErasureItem.Kind.CONVERSATION, conversation=conversation)
            | Q(kind=ErasureItem.Kind.MESSAGE, message__conversation=conversation),
            state__in=ErasureItem.PURGED).order_by("id").values_list("kind", "message_id",
                                                                      "job_id"):
        found[None if kind == ErasureItem.Kind.CONVERSATION else message_id] = job_id
    return found


def visible_conversation(request: HttpRequest, pk: int) -> Conversation:
    return get_object_or_404(Conversation.objects.visible_to(request.user), pk=pk)


@require_POST
@require_role(Role.OPERATOR, lookup=lambda request, pk: visible_conversation(request, pk))
def protect(request: HttpRequest, pk: int) -> HttpResponse:
    """Put a conversation on the keep-list (or take it off): protected ones are never sent."""
    conversation = visible_conversation(request, pk)
    conversation.protected = request.POST.get("protected") == "1"
    conversation.save(update_fields=["protected"])
    audit.record(request.user, audit.Action.KEEP_LIST_CHANGED, conversation, request,
                 protected=conversation.protected)
    if is_fragment(request):
        return render(request, "conversations/transcript.html#protect",
                      {"conversation": conversation})
    return redirect("transcript", pk=conversation.pk)
