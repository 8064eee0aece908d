"""The history in the admin: read-only; nobody adds, changes or deletes runs here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from django_automigrate.models import MigrationRun


@admin.register(MigrationRun)
class MigrationRunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "started_at",
        "database",
        "trigger",
        "status",
        "duration",
        "host",
        "release",
    )
    list_filter = ("status", "database", "trigger", "started_at")
    search_fields = ("host", "release", "error_summary", "failed_migration")
    date_hierarchy = "started_at"
    readonly_fields = tuple(field.name for field in MigrationRun._meta.fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
