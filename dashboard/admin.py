"""The Django admin, which cannot rewrite history: jobs, items, receipts, runs and audit
events are read-only here, mirrored text cannot be edited, secrets are never shown (only a
key's last characters), and every change made here (people, groups, connections, policies,
the keep-list) is written to Lethe's audit trail too."""

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from .models import (
    AuditEvent,
    Character,
    Connection,
    Conversation,
    ErasureItem,
    ErasureJob,
    Finding,
    FindingNotice,
    FindingPattern,
    JobNotification,
    Message,
    PolicyRun,
    RetentionPolicy,
    SyncRun,
)
from .team import audit


class Audited(admin.ModelAdmin):
    """Every addition, change and deletion made in the admin lands in the audit trail, with
    the admin's own summary of what changed (field names, never values)."""

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        audit.record(request.user, audit.Action.ADMIN_CHANGE, obj, request, change="added",
                     fields=message)
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        audit.record(request.user, audit.Action.ADMIN_CHANGE, obj, request, change="changed",
                     fields=message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        for obj in queryset:
            audit.record(request.user, audit.Action.ADMIN_CHANGE, obj, request,
                         change="deleted")
        return super().log_deletions(request, queryset)


class ReadOnly(admin.ModelAdmin):
    """Seen, never changed: what a receipt or the trail stands on."""

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


admin.site.unregister(get_user_model())
admin.site.unregister(Group)


@admin.register(get_user_model())
class AuditedUserAdmin(Audited, UserAdmin):
    pass


@admin.register(Group)
class AuditedGroupAdmin(Audited, GroupAdmin):
    pass


@admin.register(Connection)
class ConnectionAdmin(Audited):
    list_display = ["label", "provider", "owner", "status", "secret_hint", "last_synced_at"]
    list_filter = ["provider", "status"]
    search_fields = ["label", "owner__username", "account_name"]
    exclude = ["secrets_encrypted"]
    readonly_fields = ["uid", "provider", "secret_hint", "account_name", "created_at",
                       "last_synced_at"]
    filter_horizontal = ["shared_with"]

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        # Removing goes through the connection's page, which settles its jobs first.
        return False


@admin.register(Character)
class CharacterAdmin(ReadOnly):
    list_display = ["name", "connection", "provider_id", "mirror_state"]
    list_filter = ["mirror_state", "connection__provider"]
    search_fields = ["name", "provider_id"]


@admin.register(Conversation)
class ConversationAdmin(Audited):
    """Only the keep-list can be changed here; what was mirrored is the provider's."""

    list_display = ["provider_id", "connection", "character", "message_count",
                    "last_message_at", "mirror_state", "provider_state", "protected"]
    list_filter = ["mirror_state", "provider_state", "protected", "connection__provider"]
    search_fields = ["provider_id"]
    readonly_fields = ("connection", "character", "provider_id", "title", "started_at",
                       "last_message_at", "message_count", "provider_state", "mirror_state",
                       "flags", "erased_at", "synced_at")
    fields = (*readonly_fields, "protected")
    date_hierarchy = "last_message_at"

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Message)
class MessageAdmin(ReadOnly):
    list_display = ["conversation", "position", "is_human", "created_at", "mirror_state"]
    list_filter = ["is_human", "mirror_state"]
    search_fields = ["provider_id"]


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnly):
    list_display = ["pk", "connection", "status", "full", "started_at", "finished_at",
                    "conversations", "messages", "gone"]
    list_filter = ["status", "full"]


class ErasureItemInline(admin.TabularInline):
    model = ErasureItem
    fields = ("kind", "provider_id", "state", "attempts", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(ErasureJob)
class ErasureJobAdmin(ReadOnly):
    list_display = ["pk", "connection_label", "provider", "requested_by", "status", "dry_run",
                    "created_at", "finished_at"]
    list_filter = ["status", "dry_run", "provider"]
    search_fields = ["request", "requested_by__username", "connection_label"]
    inlines = [ErasureItemInline]


@admin.register(ErasureItem)
class ErasureItemAdmin(ReadOnly):
    list_display = ["pk", "job", "kind", "provider_id", "state", "attempts", "updated_at"]
    list_filter = ["state", "kind"]
    search_fields = ["provider_id", "idempotency_key"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnly):
    """The trail is append-only, here as everywhere."""

    list_display = ["at", "actor_name", "action", "object_type", "object_label", "remote_addr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_name", "object_label", "object_id"]
    date_hierarchy = "at"


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(Audited):
    list_display = ["name", "owner", "scope", "older_than_days", "mode", "enabled", "next_run_at"]
    list_filter = ["scope", "mode", "enabled"]
    search_fields = ["name", "owner__username"]
    raw_id_fields = ["owner", "connection", "character"]


@admin.register(PolicyRun)
class PolicyRunAdmin(ReadOnly):
    list_display = ["pk", "policy", "status", "created_at", "finished_at"]
    list_filter = ["status"]


@admin.register(JobNotification)
class JobNotificationAdmin(ReadOnly):
    list_display = ["job", "event", "sent_at", "email_sent", "webhook_status"]
    list_filter = ["event"]


@admin.register(Finding)
class FindingAdmin(ReadOnly):
    """Masked previews only: the value itself is in no column to show."""

    list_display = ["pk", "kind", "detector", "preview", "connection", "found_at"]
    list_filter = ["kind", "connection__provider"]


@admin.register(FindingPattern)
class FindingPatternAdmin(Audited):
    """A team's own detectors; the next sync (or `manage.py find`) uses them."""

    list_display = ["name", "pattern", "enabled", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["name"]


@admin.register(FindingNotice)
class FindingNoticeAdmin(ReadOnly):
    list_display = ["pk", "connection", "counts", "created_at", "sent_at", "last_error"]
