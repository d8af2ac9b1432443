"""Django admin for every model. Secrets are never shown: only the key's last characters."""

from django.contrib import admin

from .models import (
    AuditEvent,
    Character,
    Connection,
    Conversation,
    ErasureItem,
    ErasureJob,
    JobNotification,
    Message,
    PolicyRun,
    RetentionPolicy,
    SyncRun,
)


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ["label", "provider", "owner", "status", "secret_hint", "last_synced_at"]
    list_filter = ["provider", "status"]
    search_fields = ["label", "owner__username", "account_name"]
    exclude = ["secrets_encrypted"]
    readonly_fields = ["uid", "secret_hint", "account_name", "created_at", "last_synced_at"]
    filter_horizontal = ["shared_with"]


@admin.register(Character)
class CharacterAdmin(admin.ModelAdmin):
    list_display = ["name", "connection", "provider_id", "mirror_state"]
    list_filter = ["mirror_state", "connection__provider"]
    search_fields = ["name", "provider_id"]
    raw_id_fields = ["connection"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "connection", "character", "message_count", "last_message_at",
                    "mirror_state", "provider_state"]
    list_filter = ["mirror_state", "provider_state", "connection__provider"]
    search_fields = ["provider_id", "title"]
    raw_id_fields = ["connection", "character"]
    date_hierarchy = "last_message_at"


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["conversation", "position", "author", "is_human", "created_at", "mirror_state"]
    list_filter = ["is_human", "mirror_state"]
    search_fields = ["provider_id"]
    raw_id_fields = ["conversation"]


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "connection", "status", "full", "started_at", "finished_at",
                    "conversations", "messages", "gone"]
    list_filter = ["status", "full"]
    raw_id_fields = ["connection", "requested_by"]


class ErasureItemInline(admin.TabularInline):
    model = ErasureItem
    fields = ("kind", "provider_id", "state", "attempts", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(ErasureJob)
class ErasureJobAdmin(admin.ModelAdmin):
    list_display = ["pk", "connection", "requested_by", "status", "dry_run", "created_at",
                    "finished_at"]
    list_filter = ["status", "dry_run", "connection__provider"]
    search_fields = ["request", "requested_by__username"]
    raw_id_fields = ["connection", "requested_by"]
    inlines = [ErasureItemInline]


@admin.register(ErasureItem)
class ErasureItemAdmin(admin.ModelAdmin):
    list_display = ["pk", "job", "kind", "provider_id", "state", "attempts", "updated_at"]
    list_filter = ["state", "kind"]
    search_fields = ["provider_id", "idempotency_key"]
    raw_id_fields = ["job", "conversation", "message"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the trail is append-only, here as everywhere."""

    list_display = ["at", "actor_name", "action", "object_type", "object_label", "remote_addr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_name", "object_label", "object_id"]
    date_hierarchy = "at"

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "scope", "older_than_days", "mode", "enabled", "next_run_at"]
    list_filter = ["scope", "mode", "enabled"]
    search_fields = ["name", "owner__username"]
    raw_id_fields = ["owner", "connection", "character"]


@admin.register(PolicyRun)
class PolicyRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "policy", "status", "created_at", "finished_at"]
    list_filter = ["status"]
    raw_id_fields = ["policy"]


@admin.register(JobNotification)
class JobNotificationAdmin(admin.ModelAdmin):
    list_display = ["job", "event", "sent_at", "email_sent", "webhook_status"]
    list_filter = ["event"]
    raw_id_fields = ["job"]
