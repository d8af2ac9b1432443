"""An item's job, conversation and message are pointers the database does not check (so
that a freeze of 200,000 items does not make 600,000 lookups as it commits): every way Lethe
deletes mirror rows must null the item's pointers first, or a receipt would point at
nothing, and every way it deletes a job must delete the job's items."""

from __future__ import annotations

import pytest

from dashboard.erasure import freeze, removal
from dashboard.models import Connection, Conversation, ErasureItem, ErasureJob, Message
from tests.helpers import confirmed_job

pytestmark = pytest.mark.django_db


def orphans() -> list[int]:
    """Items whose job no longer exists."""
    return list(ErasureItem.objects.exclude(job_id__in=ErasureJob.objects.values("pk"))
                .values_list("pk", flat=True))


def dangling() -> list[tuple[int, int | None, int | None]]:
    """Items pointing at a conversation or message that no longer exists."""
    return list(ErasureItem.objects.exclude(conversation_id=None).exclude(
        conversation_id__in=Conversation.objects.values("pk")).values_list(
        "pk", "conversation_id", "message_id")) + list(
        ErasureItem.objects.exclude(message_id=None).exclude(
            message_id__in=Message.objects.values("pk")).values_list(
            "pk", "conversation_id", "message_id"))


@pytest.fixture
def both_kinds(planted_cai: Connection) -> Connection:
    """Items of both kinds on the connection: a whole conversation and single messages."""
    confirmed_job(planted_cai, 1)
    other = planted_cai.conversations.order_by("-pk").first()
    freeze.messages(planted_cai.owner, Message.objects.filter(conversation=other), {})
    assert ErasureItem.objects.filter(kind="message").exists()
    assert ErasureItem.objects.filter(kind="conversation").exists()
    return planted_cai


def test_removing_a_connection_leaves_no_item_pointing_at_its_mirror(both_kinds):
    removal.remove(both_kinds, both_kinds.owner)
    assert not Conversation.objects.exists() and not Message.objects.exists()
    kept = ErasureItem.objects.all()
    assert kept.exists()  # the receipts' items stay...
    assert not kept.exclude(conversation_id=None, message_id=None).exists()  # ...unlinked
    assert dangling() == []


def test_deleting_mirror_rows_through_django_nulls_the_items_pointers(both_kinds):
    conversation = both_kinds.conversations.order_by("-pk").first()
    Message.objects.filter(conversation=conversation).delete()
    Conversation.objects.all().delete()
    assert ErasureItem.objects.count() > 0
    assert dangling() == []


def test_a_raw_delete_of_a_message_is_seen_by_the_check_here(both_kinds):
    """The check above is what stands in for the constraint: a raw delete (which no code
    path does) would leave a dangling pointer, and `dangling` sees it."""
    from django.db import connection as db

    message = ErasureItem.objects.filter(kind="message").first().message
    with db.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Message._meta.db_table} WHERE id = %s",  # noqa: S608  # nosec B608
                       [message.pk])
    assert [row[2] for row in dangling()] == [message.pk]


def test_every_way_a_job_is_deleted_takes_its_items(both_kinds):
    """Jobs are deleted through Django only (drafts discarded by confirming, by a policy
    with nothing to send, by removing the connection), whose CASCADE deletes the items."""
    drafted = freeze.messages(both_kinds.owner, Message.objects.filter(
        conversation__connection=both_kinds), {})
    assert ErasureItem.objects.filter(job__request=drafted).exists()
    other = ErasureJob.objects.exclude(request=drafted).first()
    assert other.items.exists()
    other.delete()
    assert orphans() == []
    removal.remove(both_kinds, both_kinds.owner)
    assert not ErasureJob.objects.filter(request=drafted).exists()
    assert orphans() == []


def test_no_code_deletes_jobs_with_raw_sql():
    """What would bypass that CASCADE: SQL naming the jobs' table outside migrations."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "dashboard"
    table = ErasureJob._meta.db_table
    naming = [str(path) for path in root.rglob("*.py") if "migrations" not in path.parts
              and (table in (text := path.read_text()) or "ErasureJob._meta.db_table" in text)]
    assert naming == []


def test_the_pointers_are_unchecked_in_the_schema():
    from django.db import connection as db

    with db.cursor() as cursor:
        constraints = db.introspection.get_constraints(cursor, ErasureItem._meta.db_table)
    checked = {column for c in constraints.values() if c["foreign_key"] for column in c["columns"]}
    assert not checked & {"job_id", "conversation_id", "message_id"}


def test_a_raw_delete_of_a_job_is_seen_by_the_check_here(both_kinds):
    from django.db import connection as db

    job = ErasureJob.objects.first()
    held = sorted(ErasureItem.objects.filter(job_id=job.pk).values_list("pk", flat=True))
    assert held
    with db.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ErasureJob._meta.db_table} WHERE id = %s",  # noqa: S608  # nosec B608
                       [job.pk])
    assert sorted(orphans()) == held
