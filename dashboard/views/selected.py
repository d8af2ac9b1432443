"""The conversations a person has selected, held in their session so the selection
survives paging, filter changes and reloads. What is kept: the ids ticked, the filters
selected whole with "Select all N matching" (as their query strings, re-read through the
filter form each time, so a later sync adds what now matches), and the ids unticked since.
Never titles or text: a filter with search text (often the very personal data about to be
erased) is turned into the ids it matches, and only a digest of it is kept, to say that
it was selected whole."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, QueryDict

from ..forms import ConversationFilter
from ..mirror import selection
from ..models import Connection, Conversation
from .common import parse_ids

SESSION_KEY = "lethe.conversation_selection"


@dataclass
class Held:
    ids: set[int] = field(default_factory=set)
    filters: list[str] = field(default_factory=list)
    excluded: set[int] = field(default_factory=set)
    used: list[str] = field(default_factory=list)  # digests of the filters selected whole

    def all_selected(self, query: str) -> bool:
        return _digest(query) in self.used


def _digest(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def filter_query(params: QueryDict) -> str:
    """The filter part of a query string, in a fixed order: what "this filter" means."""
    kept = QueryDict(mutable=True)
    for name in ConversationFilter.FILTERS:
        value = params.get(name)
        if value:
            kept[name] = str(value)
    return kept.urlencode()


def load(request: HttpRequest) -> Held:
    raw = request.session.get(SESSION_KEY) or {}
    return Held(ids=set(raw.get("ids", [])), filters=list(raw.get("filters", [])),
                excluded=set(raw.get("excluded", [])), used=list(raw.get("used", [])))


def save(request: HttpRequest, held: Held) -> None:
    request.session[SESSION_KEY] = {"ids": sorted(held.ids), "filters": held.filters,
                                    "excluded": sorted(held.excluded), "used": held.used}


def apply_page(request: HttpRequest, held: Held) -> None:
    """Take the ticks of the page the form was posted from: of the rows it showed
    (``shown``), those ticked (``conversation``) are in, the others out. ValueError for
    a forged id."""
    shown = set(parse_ids(request.POST.getlist("shown")))
    ticked = set(parse_ids(request.POST.getlist("conversation"))) & shown
    unticked = shown - ticked
    if held.used and conversations(request, held).filter(pk__in=unticked).exists():
        held.used.clear()  # one taken out: no filter is wholly selected any more
    held.ids = (held.ids - shown) | ticked
    held.excluded = (held.excluded - ticked) | (unticked if held.filters else set())


def select_all(request: HttpRequest, held: Held, query: str) -> None:
    """Add every present conversation `query` matches (a filter in error adds nothing)."""
    if held.all_selected(query):
        return
    params = QueryDict(query)
    form = ConversationFilter(Connection.objects.visible_to(request.user), params)
    if not form.is_valid():
        return
    matching = selection.held(request.user, [], [form.cleaned_data], [])
    if params.get("q"):
        found = set(matching.values_list("pk", flat=True))
        held.ids |= found
        held.excluded -= found
    else:
        held.filters.append(query)
        # Back in: what this filter matches. What was unticked under another filter and
        # does not match this one stays out (it would otherwise be erased unasked).
        held.excluded -= set(matching.filter(pk__in=held.excluded).values_list("pk", flat=True))
    held.used.append(_digest(query))


def conversations(request: HttpRequest, held: Held) -> QuerySet[Conversation]:
    """The held selection as present conversations the person may see now."""
    if not held.ids and not held.filters:
        return Conversation.objects.none()  # no query at all for the usual empty case
    connections = Connection.objects.visible_to(request.user)
    filters: list[dict[str, Any]] = []
    for query in held.filters:
        form = ConversationFilter(connections, QueryDict(query))
        if form.is_valid():  # a filter that no longer reads (a date now bad) adds nothing
            filters.append(form.cleaned_data)
    return selection.held(request.user, sorted(held.ids), filters, sorted(held.excluded))
