"""Every registered provider works in the dashboard with no code of its own: a connection
made from its fake's credentials syncs, and its conversations erase and verify."""

from __future__ import annotations

import pytest

from dashboard.erasure import worker
from dashboard.models import ErasureItem, ErasureJob
from providers.fakes import FAKES
from tests.helpers import confirmed_job

pytestmark = [pytest.mark.django_db,
              pytest.mark.parametrize("mirrored", sorted(FAKES), indirect=True)]


def test_sync_mirrors_what_the_provider_holds(mirrored) -> None:  # type: ignore[no-untyped-def]
    fake, connection = mirrored
    ids = set(connection.conversations.values_list("provider_id", flat=True))
    assert ids == fake.conversation_ids()
    for conv in connection.conversations.all():
        assert list(conv.messages.order_by("position").values_list("provider_id", flat=True)) \
            == fake.message_ids(conv.provider_id)


def test_erasing_conversations_verifies_them_and_marks_the_mirror(mirrored) -> None:  # type: ignore[no-untyped-def]
    fake, connection = mirrored
    chosen = list(connection.conversations.order_by("id")[:2])
    job = worker.work_job(confirmed_job(connection, 2, include_pinned=True).pk)
    assert job.status == ErasureJob.Status.DONE
    states = list(job.items.values_list("state", flat=True))
    details = list(job.items.values_list("detail", flat=True))
    assert states == [ErasureItem.State.VERIFIED] * 2, details
    for conv in connection.conversations.filter(pk__in=[c.pk for c in chosen]):
        assert conv.mirror_state == "erased"
        assert fake.message_ids(conv.provider_id) == []
    assert all(n == 1 for n in fake.deletes.values())
