"""Conversations screen (filter, select, paginate) and the transcript of one."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ..forms import ConversationFilter
from ..lib.paging import paginate
from ..mirror import selection
from ..models import Connection, Conversation, ErasureItem, MirrorState
from ..team import audit
from ..team.roles import Role
from .common import is_fragment, require_role


def conversation_list(request: HttpRequest) -> HttpResponse:
    connections = Connection.objects.visible_to(request.user)
    form = ConversationFilter(connections, request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    qs = selection.matching(request.user, data).select_related("connection", "character")
    sort = data.get("sort") or "newest"
    page = paginate(qs, "last_message_at", descending=sort == "newest",
                    size=settings.LETHE_PAGE_SIZE,
                    after=request.GET.get("after"), before=request.GET.get("before"))
    params = request.GET.copy()
    for key in ("after", "before"):
        params.pop(key, None)
    context = {
        "form": form,
        "page": page,
        "params": params.urlencode(),
        "filter_params": [(k, v) for k, v in params.items() if v],
        "has_connections": connections.exists(),
        # Counted only when asked for: "select all N matching" needs the number.
        "total": (qs.filter(mirror_state=MirrorState.PRESENT).count()
                  if request.GET.get("count") else None),
    }
    template = "conversations/list.html"
    if is_fragment(request) and request.GET.get("count"):
        return render(request, f"{template}#select-all", context)
    if is_fragment(request):
        return render(request, f"{template}#results", context)
    return render(request, template, context)


def transcript(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_object_or_404(
        Conversation.objects.visible_to(request.user).select_related("connection",
                                                                      "character"),
        pk=pk,
    )
    q = request.GET.get("q", "").strip()[:200]
    erased_by = _erasing_jobs(conversation)
    turns = list(conversation.messages.all().order_by("position"))
    for turn in turns:
        turn.erased_by = erased_by.get(turn.pk, erased_by.get(None))  # type: ignore[attr-defined]
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
