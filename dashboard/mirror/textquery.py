"""The search box's grammar, with one meaning on PostgreSQL and on SQLite (the demo):
words match in any order, "a phrase in quotes" matches those words in that order, and
-word or -"a phrase" leaves out what holds it. Every term must hold within one piece of
text: one message, one title, one character's name.

PostgreSQL matches messages through the full-text index of migration ``search``
(``to_tsvector('simple', text)``, each term a ``phraseto_tsquery``, so the database's own
parser splits e-mail addresses and hyphenated words exactly as it indexed them). Titles,
names and, on SQLite, messages are matched with an equivalent regular expression: the
term's words as whole words, separated by anything that is not a letter or digit."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import Q, QuerySet

from ..models import Message

# 'simple': lower-cased words, no stemming or stop words, so names, codes and secrets in
# any language are found as typed. Changing it means a new index (see the migration).
SEARCH_CONFIG = "simple"

_TERM = re.compile(r'(-?)"([^"]*)"?|(-?)(\S+)')
_EDGES = re.compile(r"^\W+|\W+$")


@dataclass(frozen=True)
class Term:
    text: str  # its words, single-spaced
    excluded: bool


def parse(q: str) -> list[Term]:
    """The terms of a query; punctuation on their own are not terms."""
    terms = []
    for m in _TERM.finditer(q):
        quoted = m.group(2) is not None
        minus, raw = (m.group(1), m.group(2)) if quoted else (m.group(3), m.group(4))
        text = " ".join(_EDGES.sub("", word) for word in raw.split())
        text = " ".join(text.split())
        if re.search(r"\w", text):
            terms.append(Term(text, excluded=bool(minus)))
    return terms


def pattern(term: Term) -> str:
    """A regular expression for the term's words as whole words in that order. Written in
    the syntax Python (SQLite's REGEXP in Django) and PostgreSQL's ARE share."""
    words = r"\W+".join(re.escape(word) for word in term.text.split())
    return rf"(?<!\w){words}(?!\w)"


def holds(text: str, terms: list[Term]) -> bool:
    """In Python, what `regex_condition` asks of the database: does `text` match?"""
    return bool(terms) and all(
        bool(re.search(pattern(term), text, re.IGNORECASE)) != term.excluded
        for term in terms)


def regex_condition(field: str, terms: list[Term]) -> Q:
    """`field` holds every term that is not excluded and none that is."""
    condition = Q()
    for term in terms:
        part = Q(**{f"{field}__iregex": pattern(term)})
        if term.excluded:
            condition &= ~part
        else:
            # A plain substring test first, far cheaper than the regular expression,
            # which then only confirms the few rows that hold the longest word at all.
            longest = max(term.text.split(), key=len)
            condition &= Q(**{f"{field}__icontains": longest}) & part
    return condition


def ts_query(terms: list[Term]) -> SearchQuery | None:
    """Every term as a phrase query, the excluded ones negated, all of them required."""
    combined: SearchQuery | None = None
    for term in terms:
        part = SearchQuery(term.text, config=SEARCH_CONFIG, search_type="phrase")
        if term.excluded:
            part = ~part
        combined = part if combined is None else combined & part
    return combined


def text_vector() -> SearchVector:
    """The indexed expression; a query must use exactly this one for the index to serve."""
    return SearchVector("text", config=SEARCH_CONFIG)


def message_condition(messages: QuerySet[Message], terms: list[Term]
                      ) -> tuple[QuerySet[Message], Q]:
    """``messages`` ready to be filtered, and the condition of matching every term (never
    true when there is no term). Apart so a caller can add alternatives with ``|``."""
    if not terms:
        return messages, Q(pk__in=[])
    if connection.vendor != "postgresql":
        return messages, regex_condition("text", terms)
    return messages.annotate(words=text_vector()), Q(words=ts_query(terms))


def filter_messages(messages: QuerySet[Message], terms: list[Term]) -> QuerySet[Message]:
    """The messages that match every term (none when there is no term)."""
    ready, condition = message_condition(messages, terms)
    return ready.filter(condition)
