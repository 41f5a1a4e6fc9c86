"""Read-only admin pages: key metadata for auditors. Wrapped material is never shown."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import DataKey


class ReadOnlyAdmin(admin.ModelAdmin):
    """Keys change only through the rotation commands, never through a form."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
