"""The group results' admin: a group's members, linked to their task pages."""

from __future__ import annotations

import re

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from celery_sa.admin.base import ResultAdmin
from celery_sa.admin.decoding import decode
from celery_sa.admin.display import decoded_html
from celery_sa.models import GroupResult, TaskResult

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@admin.register(GroupResult)
class GroupResultAdmin(ResultAdmin):
    list_display = ("taskset_id", "date_done")
    search_fields = ("taskset_id",)
    ordering = ("-date_done", "-id")
    fields = ("taskset_id", "date_done", "member_links", "result_view")
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[GroupResult], search_term: str
    ) -> tuple[QuerySet[GroupResult], bool]:
        term = search_term.strip()
        return (queryset.filter(taskset_id=term) if term else queryset), False

    @admin.display(description=_("result"))
    def result_view(self, obj: GroupResult) -> SafeString:
        return decoded_html(decode(obj.result))

    @admin.display(description=_("member tasks"))
    def member_links(self, obj: GroupResult) -> SafeString:
        ids = [
            i
            for i in dict.fromkeys(UUID.findall(bytes(obj.result or b"").decode("latin-1")))
            if i != obj.taskset_id
        ]
        if not ids:
            return decoded_html(None)
        found = dict(TaskResult.objects.filter(task_id__in=ids).values_list("task_id", "pk"))
        return format_html_join(
            mark_safe("<br>"),
            "{}",
            (
                (
                    format_html(
                        '<a href="{}">{}</a>',
                        reverse("admin:celery_sa_taskresult_change", args=[found[task_id]]),
                        task_id,
                    )
                    if task_id in found
                    else task_id,
                )
                for task_id in ids
            ),
        )
