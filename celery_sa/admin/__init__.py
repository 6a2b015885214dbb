"""Django admin over Celery's result tables: read-only, decoded, safe, fast on large tables."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BinaryField, Func, IntegerField, QuerySet
from django.db.models.functions import Substr
from django.db.models.sql.compiler import SQLCompiler
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from celery_sa.admin.actions import rerun_tasks, revoke_tasks
from celery_sa.admin.base import ResultAdmin
from celery_sa.admin.decoding import DECODE_LIMIT, Decoded, decode
from celery_sa.admin.filters import NameFilter, QueueFilter, StatusFilter, WorkerFilter
from celery_sa.db import vendors
from celery_sa.models import GroupResult, TaskResult, has_date_started
from celery_sa.reports.charts import colour_of

if TYPE_CHECKING:
    from django.db.models.sql.compiler import _AsSqlType
    from django.utils.functional import _StrOrPromise

BLOB_COLUMNS = ("result", "args", "kwargs", "children", "stamps")
LIST_COLUMNS = (
    "id",
    "task_id",
    "name",
    "status",
    "date_started",
    "date_done",
    "worker",
    "queue",
    "retries",
)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CSV_COLUMNS = ("task_id", "name", "status", "date_done", "worker", "queue", "retries")
GROUP_LOOKAROUND = timedelta(hours=1)
GROUP_SCAN_LIMIT = 500


def format_runtime(seconds: float) -> str:
    """``0.042 s``, ``12.5 s``, ``3 min 20 s``, ``2 h 5 min``."""
    if seconds < 10:
        # Translators: a task's runtime in seconds ("s"), e.g. "0.042 s".
        return gettext("%(seconds).3f s") % {"seconds": seconds}
    if seconds < 60:
        # Translators: a task's runtime in seconds ("s"), e.g. "12.5 s".
        return gettext("%(seconds).1f s") % {"seconds": seconds}
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        # Translators: a task's runtime in minutes ("min") and seconds ("s").
        return gettext("%(minutes)d min %(seconds)d s") % {"minutes": minutes, "seconds": rest}
    hours, minutes = divmod(minutes, 60)
    # Translators: a task's runtime in hours ("h") and minutes ("min").
    return gettext("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}


class ByteLength(Func):
    """A binary column's size in bytes, by the function its database names it (not
    Django's Length, which mssql-django turns into LEN())."""

    output_field = IntegerField()

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> _AsSqlType:
        function = vendors.get_operations(connection).vendor.byte_length_function
        return super().as_sql(compiler, connection, function, template, arg_joiner, **extra_context)


def with_value_heads(queryset: QuerySet[TaskResult]) -> QuerySet[TaskResult]:
    """Annotate each value column's first DECODE_LIMIT + 1 bytes and its size: enough to
    decode any value that may be decoded, and never a whole 10 MB one."""
    heads = {
        f"{column}_head": Substr(column, 1, DECODE_LIMIT + 1, output_field=BinaryField())
        for column in BLOB_COLUMNS
    }
    sizes = {f"{column}_size": ByteLength(column) for column in BLOB_COLUMNS}
    return queryset.annotate(**heads, **sizes)


def value_of(row: TaskResult, column: str) -> Decoded | None:
    """The decoded value of a column of a row from :func:`with_value_heads`."""
    head = getattr(row, f"{column}_head", None)
    return decode(head, size=getattr(row, f"{column}_size", None))


def decoded_html(value: Decoded | None) -> SafeString:
    if value is None:
        return mark_safe('<span class="celery-sa-empty">—</span>')
    marker = (
        format_html('<p class="celery-sa-marker"><strong>{}</strong></p>', value.problem)
        if value.problem
        else ""
    )
    return format_html(
        '{}<pre class="celery-sa-value" style="white-space: pre-wrap; max-height: 40em; '
        'overflow: auto">{}</pre>',
        marker,
        value.text,
    )


def value_view(column: str, description: _StrOrPromise) -> Callable[[Any, TaskResult], SafeString]:
    """A read-only field of the task page: ``column``'s value, decoded."""

    @admin.display(description=description)
    def view(model_admin: Any, obj: TaskResult) -> SafeString:
        return decoded_html(value_of(obj, column))

    return view


@admin.register(TaskResult)
class TaskResultAdmin(ResultAdmin):
    list_display = (
        "task_id",
        "name",
        "status_badge",
        "date_done",
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
                    "started",
                    "date_done",
                    "runtime",
                    "group_links",
                )
            },
        ),
        (_("Execution"), {"fields": ("worker", "queue", "retries")}),
        (
            _("Values"),
            {"fields": ("result_view", "args_view", "kwargs_view", "children_view", "stamps_view")},
        ),
        (_("Traceback"), {"fields": ("traceback_view",)}),
    )
    readonly_fields = (
        "task_id",
        "name",
        "status_badge",
        "started",
        "date_done",
        "runtime",
        "group_links",
        "worker",
        "queue",
        "retries",
        "result_view",
        "args_view",
        "kwargs_view",
        "children_view",
        "stamps_view",
        "traceback_view",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskResult]:
        queryset = super().get_queryset(request)
        url_name = request.resolver_match.url_name if request.resolver_match else ""
        if (url_name or "").endswith("_changelist"):
            if has_date_started(queryset.db):
                return queryset.only(*LIST_COLUMNS)
            return queryset.only(*(c for c in LIST_COLUMNS if c != "date_started"))
        return with_value_heads(queryset.defer(*BLOB_COLUMNS))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[TaskResult], search_term: str
    ) -> tuple[QuerySet[TaskResult], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        # One index at a time (an OR across columns would scan the table): the unique
        # task_id, then the (name, date_done) index, exact name before a prefix.
        for lookup in ({"task_id": term}, {"name": term}):
            if queryset.filter(**lookup).exists():
                return queryset.filter(**lookup), False
        return queryset.filter(name__startswith=term), False

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: TaskResult) -> SafeString:
        colour = colour_of(obj.status)
        return format_html(
            '<span class="celery-sa-status" style="color: {}; font-weight: bold">{}</span>',
            colour,
            obj.status or "—",
        )

    @admin.display(description=_("runtime"))
    def runtime(self, obj: TaskResult) -> str:
        """From the start (kept by celery_sa's backend under task_track_started) to done."""
        if obj.started is None or obj.date_done is None:
            return "—"
        return format_runtime((obj.date_done - obj.started).total_seconds())

    @admin.display(description=_("date started"))
    def started(self, obj: TaskResult) -> datetime | None:
        return obj.started

    result_view = value_view("result", _("result"))
    args_view = value_view("args", _("args"))
    kwargs_view = value_view("kwargs", _("kwargs"))
    children_view = value_view("children", _("children"))
    stamps_view = value_view("stamps", _("stamps"))

    @admin.display(description=_("traceback"))
    def traceback_view(self, obj: TaskResult) -> SafeString:
        if not obj.traceback:
            return decoded_html(None)
        return format_html(
            '<pre class="celery-sa-traceback" style="font-family: monospace; '
            'white-space: pre; overflow: auto">{}</pre>',
            obj.traceback,
        )

    @admin.display(description=_("group"))
    def group_links(self, obj: TaskResult) -> SafeString:
        """Groups saved within an hour of this task that list it among their members."""
        if obj.date_done is None or not obj.task_id:
            return decoded_html(None)
        around = (obj.date_done - GROUP_LOOKAROUND, obj.date_done + GROUP_LOOKAROUND)
        groups = GroupResult.objects.filter(date_done__range=around).order_by("-date_done")
        found = [
            group
            for group in groups[:GROUP_SCAN_LIMIT]
            if obj.task_id.encode() in bytes(group.result or b"")
        ]
        if not found:
            return decoded_html(None)
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:celery_sa_groupresult_change", args=[group.pk]), group.taskset_id)
                for group in found
            ),
        )

    # -- actions -----------------------------------------------------------------------

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("celery_sa.rerun_taskresult")

    @admin.action(description=_("Re-run selected tasks"), permissions=["rerun"])
    def rerun(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> None:
        sent, problems = rerun_tasks(queryset)
        for problem in problems:
            self.message_user(request, problem, level=messages.WARNING)
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

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("celery_sa.revoke_taskresult")

    @admin.action(description=_("Revoke selected unfinished tasks"), permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> None:
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
    ) -> StreamingHttpResponse:
        class Echo:
            def write(self, value: str) -> str:
                return value

        writer = csv.writer(Echo())
        rows = with_value_heads(queryset.only(*LIST_COLUMNS, "traceback"))

        def lines() -> Any:
            yield writer.writerow([*CSV_COLUMNS, "args", "kwargs", "result", "traceback"])
            for row in rows.order_by("-date_done", "-id").iterator(chunk_size=500):
                values = [getattr(row, column) for column in CSV_COLUMNS]
                decoded = [value_of(row, column) for column in ("args", "kwargs", "result")]
                texts = [(d.problem or d.text) if d else "" for d in decoded]
                yield writer.writerow([*values, *texts, row.traceback or ""])

        response = StreamingHttpResponse(lines(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="celery-task-results.csv"'
        return response


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


# The overview page registers itself (its module needs ResultAdmin, above).
from celery_sa.admin import overview  # noqa: E402, F401
