"""Read-only admin pages: key metadata for auditors. Wrapped material is never shown."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import (
    DataKey,
    IndexKey,
    RotationChunk,
    RotationFailure,
    RotationRun,
    format_key_id,
)


class ReadOnlyPermissions:
    """Keys and runs change only through the rotation commands, never through a form."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyPermissions, admin.ModelAdmin):
    pass


def _key_ids(key_ids: list[int]) -> str:
    return ", ".join(format_key_id(key_id) for key_id in key_ids) or "-"


@admin.register(DataKey)
class DataKeyAdmin(ReadOnlyAdmin):
    list_display = ("hex_id", "state", "created_at", "primary_since", "retired_at")
    list_filter = ("state",)
    # wrapped_key is deliberately absent: even wrapped material stays off the page.
    fields = (
        "hex_id",
        "state",
        "master_key_fingerprint",
        "created_at",
        "primary_since",
        "decrypt_only_since",
        "retired_at",
        "destroyed_at",
    )
    readonly_fields = fields

    @admin.display(description="key id", ordering="key_id")
    def hex_id(self, obj: DataKey) -> str:
        return obj.hex_id


@admin.register(IndexKey)
class IndexKeyAdmin(ReadOnlyAdmin):
    list_display = ("hex_id", "slot", "state", "created_at", "state_since")
    list_filter = ("state", "slot")
    # wrapped_key is deliberately absent, as on the data key pages.
    fields = (
        "hex_id",
        "slot",
        "state",
        "master_key_fingerprint",
        "created_at",
        "state_since",
        "complete_fields",
    )
    readonly_fields = fields

    @admin.display(description="key id", ordering="key_id")
    def hex_id(self, obj: IndexKey) -> str:
        return obj.hex_id


class ReadOnlyInline(ReadOnlyPermissions, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False


class RotationChunkInline(ReadOnlyInline):
    """Which worker walked which primary-key range of which table, when, with what result."""

    model = RotationChunk
    fields = (
        "model",
        "index",
        "lower",
        "upper",
        "rows",
        "reencrypted",
        "failed",
        "done",
        "worker",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields


class RotationFailureInline(ReadOnlyInline):
    model = RotationFailure
    fields = ("model", "pk_value", "field", "key_id_hex", "error")
    readonly_fields = fields

    @admin.display(description="key id")
    def key_id_hex(self, obj: RotationFailure) -> str:
        return format_key_id(obj.key_id)


@admin.register(RotationRun)
class RotationRunAdmin(ReadOnlyAdmin):
    """The rotation ledger, for auditors: when, what, how many, which keys. Never material."""

    list_display = (
        "id",
        "status",
        "started_at",
        "finished_at",
        "records_processed",
        "failed_records",
        "new_key",
        "trigger",
    )
    list_filter = ("status", "trigger")
    inlines = [RotationChunkInline, RotationFailureInline]
    fields = (
        "status",
        "phase",
        "trigger",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "holder",
        "new_key",
        "old_keys",
        "retired_keys",
        "destroyed_keys",
        "key_backup_path",
        "models_processed",
        "records_processed",
        "records_reencrypted",
        "failed_records",
        "progress",
        "census",
        "reason",
    )
    readonly_fields = fields

    @admin.display(description="new key")
    def new_key(self, obj: RotationRun) -> str:
        return format_key_id(obj.new_key_id)

    @admin.display(description="old keys")
    def old_keys(self, obj: RotationRun) -> str:
        return _key_ids(obj.old_key_ids)

    @admin.display(description="retired keys")
    def retired_keys(self, obj: RotationRun) -> str:
        return _key_ids(obj.retired_key_ids)

    @admin.display(description="destroyed keys")
    def destroyed_keys(self, obj: RotationRun) -> str:
        return _key_ids(obj.destroyed_key_ids)
