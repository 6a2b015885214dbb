"""The task results' admin: the list (filtered and searched by index only), the task
page with its values decoded, and the actions on selected tasks."""

from __future__ import annotations

from datetime import datetime

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from celery_sa.admin.actions import Rerun, plan_digest, plan_rerun, revoke_tasks, send_reruns
from celery_sa.admin.base import ResultAdmin
from celery_sa.admin.display import (
    decoded_html,
    format_runtime,
    state_badge,
    traceback_html,
    value_view,
)
from celery_sa.admin.export import csv_response
from celery_sa.admin.expressions import BLOB_COLUMNS, LIST_COLUMNS, with_value_heads
from celery_sa.admin.filters import (
    NameFilter,
    QueueFilter,
    StatusFilter,
    WorkerFilter,
    could_be_stored,
)
from celery_sa.admin.groups import groups_listing
from celery_sa.admin.timeline import timeline
from celery_sa.conf import app_settings
from celery_sa.models import TaskResult, missing_columns


@admin.register(TaskResult)
class TaskResultAdmin(ResultAdmin):
    list_display = (
        "task_id",
        "name",
        "status_badge",
        "date_done",
        "queue_wait",
        "runtime",
        "worker",
        "queue",
        "retries",
    )
    list_filter = (
        StatusFilter,
        NameFilter,
        WorkerFilter,
        QueueFilter,
        # Today, past 7 days, this month, this year, by the real time of completion: the
        # field converts the bounds into the zone the column is stored in.
        ("date_done", admin.DateFieldListFilter),
    )
    search_fields = ("task_id", "name")
    search_help_text = _("An exact task id, an exact task name or the start of one.")
    ordering = ("-date_done", "-id")
    actions = ("rerun", "revoke", "export_csv")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "task_id",
                    "name",
                    "status_badge",
                    "sent",
                    "queue_wait",
                    "started",
                    "date_done",
                    "runtime",
                    "group_links",
                )
            },
        ),
        (_("Execution"), {"fields": ("worker", "queue", "retries", "timeline_view")}),
        (
            _("Values"),
            {"fields": ("result_view", "args_view", "kwargs_view", "children_view", "stamps_view")},
        ),
        (_("Traceback"), {"fields": ("traceback_view",)}),
    )
    # Every field of the page: rows belong to Celery.
    readonly_fields = flatten_fieldsets(fieldsets)

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskResult]:
        queryset = super().get_queryset(request)
        if self.is_list(request):
            missing = missing_columns(queryset.db)
            return queryset.only(*(c for c in LIST_COLUMNS if c not in missing))
        return with_value_heads(queryset.defer(*BLOB_COLUMNS))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[TaskResult], search_term: str
    ) -> tuple[QuerySet[TaskResult], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if not could_be_stored(term):
            return queryset.none(), False
        # One index at a time (an OR across columns would scan the table): the unique
        # task_id, then the (name, date_done) index, exact name before a prefix.
        for lookup in ({"task_id": term}, {"name": term}):
            if queryset.filter(**lookup).exists():
                return queryset.filter(**lookup), False
        return queryset.filter(name__startswith=term), False

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: TaskResult) -> SafeString:
        return state_badge(obj.status)

    @admin.display(description=_("queue wait"))
    def queue_wait(self, obj: TaskResult) -> str:
        """From the first send to the start (for a task that ran once)."""
        wait = obj.queue_wait
        return "—" if wait is None else format_runtime(max(0.0, wait))

    @admin.display(description=_("runtime"))
    def runtime(self, obj: TaskResult) -> str:
        """From the start of the last execution (kept by celery_sa's backend) to done."""
        if obj.started is None or obj.date_done is None:
            return "—"
        return format_runtime((obj.date_done - obj.started).total_seconds())

    @admin.display(description=_("date started"), empty_value="—")
    def started(self, obj: TaskResult) -> datetime | None:
        return obj.started

    @admin.display(description=_("date sent"), empty_value="—")
    def sent(self, obj: TaskResult) -> datetime | None:
        return obj.sent

    @admin.display(description=_("timeline"))
    def timeline_view(self, obj: TaskResult) -> SafeString:
        """Sent, each execution that ended in a retry, the last one."""
        context = {"timeline": timeline(obj)}
        return render_to_string("admin/celery_sa/taskresult/timeline.html", context)

    result_view = value_view("result", _("result"))
    args_view = value_view("args", _("args"))
    kwargs_view = value_view("kwargs", _("kwargs"))
    children_view = value_view("children", _("children"))
    stamps_view = value_view("stamps", _("stamps"))

    @admin.display(description=_("traceback"))
    def traceback_view(self, obj: TaskResult) -> SafeString:
        return traceback_html(obj.traceback)

    @admin.display(description=_("group"))
    def group_links(self, obj: TaskResult) -> SafeString:
        """Groups saved within an hour of this task that list it among their members."""
        if obj.date_done is None or not obj.task_id:
            return decoded_html(None)
        groups = groups_listing(obj.task_id, obj.date_done)
        if not groups:
            return decoded_html(None)
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:celery_sa_groupresult_change", args=[group.pk]), group.taskset_id)
                for group in groups
            ),
        )

    # -- actions -----------------------------------------------------------------------

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("celery_sa.rerun_taskresult")

    @admin.action(description=_("Re-run selected tasks"), permissions=["rerun"])
    def rerun(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> HttpResponse | None:
        """A page that lists what would be sent; sent once it is confirmed, if the rows
        still say what the page showed."""
        if not self.within_limit(request, queryset, app_settings.action_max_rows):
            return None
        plan = plan_rerun(queryset)
        if request.POST.get("post") != "yes":
            return self.rerun_confirmation(request, plan)
        if request.POST.get("digest") != plan_digest(plan):
            self.message_user(
                request,
                _("The selected tasks changed since they were shown: nothing was sent."),
                level=messages.ERROR,
            )
            return None
        for problem in (r.problem for r in plan if r.problem):
            self.message_user(request, problem, level=messages.WARNING)
        sent = send_reruns(plan)
        if sent:
            self.message_user(
                request,
                ngettext(
                    # Translators: "ids" is a comma-separated list of the new Celery task ids.
                    "Sent %(count)d task again: %(ids)s.",
                    "Sent %(count)d tasks again: %(ids)s.",
                    len(sent),
                )
                % {"count": len(sent), "ids": ", ".join(sent)},
                level=messages.SUCCESS,
            )
        return None

    def rerun_confirmation(self, request: HttpRequest, plan: list[Rerun]) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": _("Re-run these tasks?"),
            "opts": self.model._meta,
            "plan": plan,
            "sendable": [r for r in plan if not r.problem],
            "digest": plan_digest(plan),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "changelist_url": reverse("admin:celery_sa_taskresult_changelist")
            + ("?" + request.GET.urlencode() if request.GET else ""),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/celery_sa/taskresult/rerun_confirmation.html", context
        )

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("celery_sa.revoke_taskresult")

    @admin.action(description=_("Revoke selected unfinished tasks"), permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> None:
        if not self.within_limit(request, queryset, app_settings.action_max_rows):
            return
        revoked, problem = revoke_tasks(queryset)
        if problem:
            self.message_user(request, problem, level=messages.ERROR)
            return
        self.message_user(
            request,
            ngettext(
                "Revoked %(count)d unfinished task.",
                "Revoked %(count)d unfinished tasks.",
                len(revoked),
            )
            % {"count": len(revoked)},
            level=messages.SUCCESS,
        )

    @admin.action(description=_("Export selected tasks as CSV"), permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[TaskResult]
    ) -> StreamingHttpResponse | None:
        limit = app_settings.export_max_rows
        if not self.within_limit(request, queryset, limit):
            return None
        return csv_response(queryset, limit)

    def within_limit(
        self, request: HttpRequest, queryset: QuerySet[TaskResult], limit: int
    ) -> bool:
        """Whether the selection holds at most ``limit`` rows (counted no further); a
        message says what to do when it does not."""
        if queryset[: limit + 1].count() <= limit:
            return True
        self.message_user(
            request,
            ngettext(
                # Translators: CELERY_SA_EXPORT_MAX_ROWS and CELERY_SA_ACTION_MAX_ROWS are
                # settings.
                "This action takes at most %(limit)d task at a time: narrow the selection "
                "with the filters (the limit is CELERY_SA_EXPORT_MAX_ROWS for the export, "
                "CELERY_SA_ACTION_MAX_ROWS for re-run and revoke).",
                "This action takes at most %(limit)d tasks at a time: narrow the selection "
                "with the filters (the limit is CELERY_SA_EXPORT_MAX_ROWS for the export, "
                "CELERY_SA_ACTION_MAX_ROWS for re-run and revoke).",
                limit,
            )
            % {"limit": limit},
            level=messages.ERROR,
        )
        return False
