"""The group results' admin: a group's members, linked to their task pages, and the
groups a task page links to."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from celery import states
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from celery_sa.admin.base import ResultAdmin
from celery_sa.admin.chords import callback_html
from celery_sa.admin.display import decoded_html, format_runtime, state_badge
from celery_sa.admin.expressions import in_batches, value_of, with_value_heads
from celery_sa.admin.filters import GroupProgressFilter, matching
from celery_sa.admin.group_progress import Progress, member_ids, progress_of, with_list_heads
from celery_sa.admin.pagination import AnchoredChangeList
from celery_sa.admin.waiting_chords import callback_of, parts_done, with_callback_heads
from celery_sa.models import Chord, GroupResult, TaskResult, has_column

MEMBER_LIMIT = 1000  # member links a group page shows
GROUP_LOOKAROUND = timedelta(hours=1)
GROUP_SCAN_LIMIT = 500
GROUP_BATCH = 10
# The most bytes of group results one task page reads looking for its groups.
GROUP_READ_BUDGET = 16 * 1024 * 1024


def groups_listing(task_id: str, done: datetime) -> list[GroupResult]:
    """The groups saved around ``done`` whose stored result names ``task_id``: the newest
    500, each read up to its first 1 MB, 10 at a time, 16 MB in all at most."""
    try:
        around = (done - GROUP_LOOKAROUND, done + GROUP_LOOKAROUND)
    except OverflowError:  # a time at the calendar's ends: no group is saved there
        return []
    nearby = GroupResult.objects.filter(date_done__range=around).order_by("-date_done", "-id")
    keys = list(nearby.values_list("pk", flat=True)[:GROUP_SCAN_LIMIT])
    needle, read, found = task_id.encode(), 0, []
    for group in in_batches(
        with_value_heads(nearby.defer("result"), ("result",)), keys, GROUP_BATCH
    ):
        head = bytes(group.result_head or b"")  # type: ignore[attr-defined]
        if needle in head:
            found.append(group)
        read += len(head)
        if read >= GROUP_READ_BUDGET:
            break
    return found


class GroupChangeList(AnchoredChangeList):
    """The group list: each group of the page with its progress, read for the page at
    once (celery_sa.admin.group_progress)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        found = progress_of(self.result_list)
        for group in self.result_list:
            group.progress = found.get(group.pk)


@admin.register(GroupResult)
class GroupResultAdmin(ResultAdmin):
    list_display = ("taskset_id", "size", "finished", "failed", "progress_bar", "date_done")
    list_filter = (GroupProgressFilter,)
    search_fields = ("taskset_id",)
    ordering = ("-date_done", "-id")
    fields = ("taskset_id", "date_done", "chord_view", "member_links", "result_view")
    readonly_fields = fields

    # "Show all" would read every group a filter matches: never offered.
    list_max_show_all = 0

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[GroupChangeList]:
        return GroupChangeList

    def get_paginator(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        paginator = super().get_paginator(request, *args, **kwargs)
        if request.GET.get(GroupProgressFilter.parameter_name):
            # Each group tested costs a join per task: count no further than the page
            # (about 3 s for 1,000 matches among 100,000 groups, bench/groups_100k.py).
            paginator.count_floor = paginator.pages_ahead = 0
            paginator.count_in_order = True  # newest first, along date_done's index
        return paginator

    def get_queryset(self, request: HttpRequest) -> QuerySet[GroupResult]:
        queryset = super().get_queryset(request).defer("result")
        if self.is_list(request):
            return with_list_heads(queryset)
        # The page: the result's first 1 MB and its size, never a whole 100 MB value.
        return with_value_heads(queryset, ("result",))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[GroupResult], search_term: str
    ) -> tuple[QuerySet[GroupResult], bool]:
        return matching(queryset, "taskset_id", search_term.strip()), False

    @admin.display(description=_("tasks"))
    def size(self, obj: GroupResult) -> str:
        progress = self._progress(obj)
        if progress is None:
            return "—"
        # Translators: a group's size when its stored result was read in part: "at least".
        return _("≥ %(count)s") % {"count": progress.size} if progress.cut else str(progress.size)

    @admin.display(description=_("finished"))
    def finished(self, obj: GroupResult) -> str:
        progress = self._progress(obj)
        return "—" if progress is None else str(progress.finished)

    @admin.display(description=_("failed"))
    def failed(self, obj: GroupResult) -> str:
        progress = self._progress(obj)
        return "—" if progress is None else str(progress.failed)

    @admin.display(description=_("progress"))
    def progress_bar(self, obj: GroupResult) -> SafeString | str:
        progress = self._progress(obj)
        if progress is None or not progress.size:
            return "—"
        percent = f"{progress.share:.0%}"
        return format_html(
            '<progress class="celery-sa-progress" max="{}" value="{}" data-failed="{}">{}'
            "</progress> {}",
            progress.size,
            progress.finished,
            "yes" if progress.failed else "no",
            percent,
            percent,
        )

    @staticmethod
    def _progress(obj: GroupResult) -> Progress | None:
        return getattr(obj, "progress", None)

    @admin.display(description=_("result"))
    def result_view(self, obj: GroupResult) -> SafeString:
        return decoded_html(value_of(obj, "result"))

    @admin.display(description=_("chord"))
    def chord_view(self, obj: GroupResult) -> SafeString:
        """For the header of a chord celery_sa's backend is counting: its callback and how
        far the header has got; otherwise what cannot be known."""
        chord = with_callback_heads(Chord.objects.filter(group_id=obj.taskset_id)).first()
        if chord is None:
            return format_html(
                '<p class="celery-sa-help">{}</p>',
                _(
                    "No chord waits on this group. It is a plain group, or a chord whose "
                    "callback has been sent (celery_sa's backend forgets a chord once it "
                    "sends its callback), or a chord run by Celery's own backend "
                    "(celery.chord_unlock), which records neither its callback nor its "
                    "progress."
                ),
            )
        callback = callback_of(chord)
        done = parts_done([chord.group_id]).get(chord.group_id, 0)
        size = "?" if chord.chord_size is None else str(chord.chord_size)
        url = reverse("admin:celery_sa_chord_change", args=[quote(chord.pk)])
        return format_html(
            '{} <a href="{}">{}</a><br>{}',
            # Translators: "name" is the chord callback's task name; "done" and "size"
            # numbers of header tasks.
            _(
                "Header of a chord waiting to call %(name)s: %(done)s of %(size)s header "
                "tasks returned."
            )
            % {"name": callback.name or callback.problem, "done": done, "size": size},
            url,
            _("See the waiting chord"),
            callback_html(callback),
        )

    @admin.display(description=_("member tasks"))
    def member_links(self, obj: GroupResult) -> SafeString:
        """The task ids the stored result names (within its first 1 MB), in the group's
        order, linked to their task pages with their states; the first 1,000."""
        ids = member_ids(bytes(obj.result_head or b""), obj.taskset_id)  # type: ignore[attr-defined]
        if not ids:
            return decoded_html(None)
        shown = ids[:MEMBER_LIMIT]
        rows = TaskResult.objects.filter(task_id__in=shown)
        columns = ["task_id", "pk", "status", "date_done"]
        if has_column(rows.db, "date_started"):
            columns.append("date_started")
        found = {row[0]: row[1:] for row in rows.values_list(*columns)}
        links = format_html_join(mark_safe("<br>"), "{}", ((member_line(i, found),) for i in shown))
        if len(ids) == len(shown):
            return links
        # Translators: ends a list of task ids; "count" is how many more the page found.
        more = ngettext(
            "… and at least %(count)d more", "… and at least %(count)d more", len(ids) - len(shown)
        )
        return format_html("{}<br>{}", links, more % {"count": len(ids) - len(shown)})


def member_line(task_id: str, found: dict[str | None, tuple[Any, ...]]) -> SafeString:
    """A member task: its id, linked to its page, its state (PENDING: no row yet) and, when
    its start is recorded, its runtime."""
    if task_id not in found:
        return format_html("{} {}", task_id, state_badge(states.PENDING))
    pk, status, done, *started = found[task_id]
    url = reverse("admin:celery_sa_taskresult_change", args=[pk])
    line = format_html('<a href="{}">{}</a> {}', url, task_id, state_badge(status))
    if started and started[0] is not None and done is not None and status in states.READY_STATES:
        runtime = format_runtime(max(0.0, (done - started[0]).total_seconds()))
        line = format_html('{} <span class="celery-sa-runtime">{}</span>', line, runtime)
    return line
