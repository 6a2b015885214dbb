"""Read-only Django admin over Celery's result tables."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from celery_sa.models import GroupResult, TaskResult


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Rows belong to Celery: view them, delete them with permission, never edit them."""

    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TaskResult)
class TaskResultAdmin(ReadOnlyAdmin):
    list_display = ("task_id", "name", "status", "date_done", "worker", "queue", "retries")
    list_filter = ("status",)
    search_fields = ("=task_id",)
    ordering = ("-date_done", "-id")
    exclude = ("result", "args", "kwargs", "children", "stamps")


@admin.register(GroupResult)
class GroupResultAdmin(ReadOnlyAdmin):
    list_display = ("taskset_id", "date_done")
    search_fields = ("=taskset_id",)
    ordering = ("-date_done", "-id")
    exclude = ("result",)
