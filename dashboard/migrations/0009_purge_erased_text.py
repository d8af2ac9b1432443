"""Erased means erased in Lethe too: earlier versions kept the text of what they erased.

- Message text and author, and conversation titles, of everything a provider erased
  (acknowledged, verified, already gone, soft-deleted, or acknowledged but still there) are
  removed; conversations erased whole hold no messages any more in their counts.
- Jobs keep a snapshot of their connection's label, provider and key hint, so their
  receipts stay readable once the connection is removed.
- Audit events (and the Django admin's own log) name conversations by id, character and
  connection, never by title (the title was often the first line of the chat).

Written against the historical models on purpose: it must not change when the code does.
"""

from django.db import migrations
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

PURGED = ["erased", "verified", "already_gone", "soft_deleted", "still_there"]


def snapshot_connections(apps):
    ErasureJob = apps.get_model("dashboard", "ErasureJob")
    for job in ErasureJob.objects.select_related("connection").filter(
            connection__isnull=False).iterator():
        job.connection_label = job.connection.label[:120]
        job.provider = job.connection.provider
        job.key_hint = job.connection.secret_hint
        job.save(update_fields=["connection_label", "provider", "key_hint"])


def purge(apps):
    Conversation = apps.get_model("dashboard", "Conversation")
    Message = apps.get_model("dashboard", "Message")
    ErasureItem = apps.get_model("dashboard", "ErasureItem")
    now = timezone.now()
    done = ErasureItem.objects.filter(state__in=PURGED)
    whole = Conversation.objects.filter(
        Q(mirror_state="erased")
        | Q(pk__in=done.filter(kind="conversation").values("conversation_id")))
    whole.update(mirror_state="erased", title="", message_count=0,
                 erased_at=Coalesce("erased_at", now))
    single = Message.objects.filter(
        Q(mirror_state="erased") | Q(conversation__in=whole)
        | Q(pk__in=done.filter(kind="message").values("message_id")))
    # Conversations that lose single messages, and the titles those messages gave them.
    derived: dict[int, set[str]] = {}
    for conv_id, text in single.filter(conversation__mirror_state="present", is_human=True
                                       ).values_list("conversation_id", "text").iterator():
        derived.setdefault(conv_id, set()).add(_title(text))
    touched = set(derived) | set(single.filter(conversation__mirror_state="present")
                                 .values_list("conversation_id", flat=True))
    single.update(mirror_state="erased", text="", author="", erased_at=now)
    held = Message.objects.filter(conversation=OuterRef("pk"), mirror_state="present").order_by(
    ).values("conversation").annotate(n=Count("pk")).values("n")
    Conversation.objects.filter(pk__in=touched).update(
        message_count=Coalesce(Subquery(held), 0))
    for conversation in Conversation.objects.filter(pk__in=list(derived)).iterator():
        if conversation.title in derived[conversation.pk]:
            conversation.title = conversation.provider_id[:300]
            conversation.save(update_fields=["title"])


def _title(text):
    """The title a sync derived from a first line (as the code of this version did)."""
    line = " ".join(text.split())
    return line if len(line) <= 80 else line[:79] + "…"


def relabel_audit(apps):
    AuditEvent = apps.get_model("dashboard", "AuditEvent")
    Conversation = apps.get_model("dashboard", "Conversation")
    events = AuditEvent.objects.filter(object_type="conversation")
    for object_id in set(events.values_list("object_id", flat=True)):
        conv = Conversation.objects.select_related("character", "connection").filter(
            pk=int(object_id) if object_id.isdigit() else 0).first()
        label = (f"conversation {conv.provider_id} of "
                 f"{conv.character.name if conv.character else 'no character'} on "
                 f"{conv.connection.label}" if conv else f"conversation #{object_id}")
        # The trail is append-only for people; this one correction removes chat text.
        events.filter(object_id=object_id).update(object_label=label[:200])


def relabel_admin_log(apps):
    """The admin's own log named conversations by their title too."""
    LogEntry = apps.get_model("admin", "LogEntry")
    ContentType = apps.get_model("contenttypes", "ContentType")
    kind = ContentType.objects.filter(app_label="dashboard", model="conversation").first()
    if kind is None:
        return
    for entry in LogEntry.objects.filter(content_type=kind).iterator():
        entry.object_repr = f"conversation #{entry.object_id}"
        entry.save(update_fields=["object_repr"])


def forwards(apps, schema_editor):
    snapshot_connections(apps)
    purge(apps)
    relabel_audit(apps)
    relabel_admin_log(apps)


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0008_erased_text_and_removed_connections"),
                    ("admin", "0001_initial"), ("contenttypes", "0001_initial")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
