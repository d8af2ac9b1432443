"""Keyset paging on any sort key: every row once, in order, ties broken by id, NULLs
first when descending and last when ascending, forwards and backwards."""

from __future__ import annotations

import pytest
from django.db.models import F

from dashboard.lib.paging import paginate
from dashboard.mirror import selection
from dashboard.models import Conversation

pytestmark = pytest.mark.django_db


def walk(qs, descending: bool, nullable: bool, size: int = 3) -> list[list[int]]:  # type: ignore[no-untyped-def]
    pages, after = [], None
    while True:
        page = paginate(qs, "sort_key", descending=descending, size=size, after=after,
                        nullable=nullable)
        pages.append([c.pk for c in page.rows])
        if not page.next_cursor:
            return pages
        after = page.next_cursor


def pages_back(qs, descending: bool, nullable: bool, size: int = 3) -> list[list[int]]:  # type: ignore[no-untyped-def]
    """From the last page to the first with `before`, each page's rows in order."""
    kwargs = {"descending": descending, "nullable": nullable, "size": size}
    page = paginate(qs, "sort_key", **kwargs)
    while page.next_cursor:
        page = paginate(qs, "sort_key", after=page.next_cursor, **kwargs)
    pages = [[c.pk for c in page.rows]]
    while page.prev_cursor:
        page = paginate(qs, "sort_key", before=page.prev_cursor, **kwargs)
        pages.insert(0, [c.pk for c in page.rows])
    return pages


def full_scan(qs, descending: bool) -> list[int]:  # type: ignore[no-untyped-def]
    """The database's own order of every row at once (its collation decides for text)."""
    key = F("sort_key").desc(nulls_first=True) if descending else F("sort_key").asc(
        nulls_last=True)
    return list(qs.order_by(key, "-pk" if descending else "pk").values_list("pk", flat=True))


@pytest.mark.parametrize("column", ["title", "character", "messages", "first", "last"])
@pytest.mark.parametrize("descending", [True, False])
def test_every_sort_key_walks_each_row_once_in_order_both_ways(synced, column, descending):
    convs = list(synced.conversations.order_by("id"))
    # Ties and NULLs on purpose: half share a count, a title and a date; two have no dates
    # and one no character.
    Conversation.objects.filter(pk__in=[c.pk for c in convs[::2]]).update(
        message_count=4, title="Same title", started_at=convs[0].started_at,
        last_message_at=convs[0].last_message_at)
    Conversation.objects.filter(pk__in=[convs[1].pk, convs[3].pk]).update(
        started_at=None, last_message_at=None)
    Conversation.objects.filter(pk=convs[5].pk).update(character=None)
    qs, nullable = selection.sorted_by(synced.conversations.all(), column)
    order = full_scan(qs, descending)
    assert len(order) == len(convs)
    forward = walk(qs, descending, nullable)
    assert [pk for page in forward for pk in page] == order
    assert pages_back(qs, descending, nullable) == forward
    if column == "messages":  # ties broken by the id, in the walking direction
        counts = {c.pk: (c.message_count, c.pk) for c in qs}
        assert order == sorted(counts, key=counts.__getitem__, reverse=descending)


def test_a_cursor_nobody_wrote_starts_at_the_beginning(synced):
    qs, nullable = selection.sorted_by(synced.conversations.all(), "title")
    first = paginate(qs, "sort_key", descending=False, size=3, nullable=nullable)
    forged = paginate(qs, "sort_key", descending=False, size=3, nullable=nullable,
                      after="not-a-cursor")
    assert [c.pk for c in forged.rows] == [c.pk for c in first.rows]
