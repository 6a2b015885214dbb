"""The admin's overview page: what the task table says about a window, charted, every
figure a link to the task list filtered to exactly its rows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import django
from celery import states
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from celery_sa.admin.base import ResultAdmin, rendered
from celery_sa.admin.display import format_runtime
from celery_sa.db.replica import ReplicaReads, replica_reads
from celery_sa.models import Overview
from celery_sa.reports import charts
from celery_sa.reports.overview import TOP_NAMES, collect_overview
from celery_sa.reports.queries import BucketCounts
from celery_sa.reports.runtimes import BucketDurations
from celery_sa.reports.window import (
    DEFAULT_PRESET,
    PRESETS,
    Window,
    between,
    last,
    parse_local,
    zone_name,
)

MAX_LABELS = 12
DAY = 86400
ANY: Any = object()
"""A filter left out of a link (None would mean "is NULL")."""


class Links:
    """Links to the task list filtered to exactly some rows (its URL reversed once a
    page: a page has hundreds of links)."""

    def __init__(self) -> None:
        self.task_list = reverse("admin:celery_sa_taskresult_changelist")

    def rows(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = ANY,
        name: str | None = ANY,
    ) -> str:
        """The results done in ``[since, until)`` with ``status`` and ``name`` (None: the
        rows where it is NULL)."""
        params: dict[str, str] = {}
        for column, value in (("status", status), ("name", name)):
            if value is None:
                params[f"{column}__isnull"] = "True"
            elif value is not ANY:
                params[column] = value
        if since is not None and until is not None:
            params["date_done__gte"] = since.isoformat(sep=" ")
            params["date_done__lt"] = until.isoformat(sep=" ")
        return f"{self.task_list}?{urlencode(params)}"


def window_of(query: Mapping[str, str]) -> tuple[Window, str]:
    """The window a request asks for, and what was wrong with it ("" if nothing: a wrong
    one shows the default window with the error)."""
    try:
        if query.get("from") or query.get("to"):
            since = parse_local(query.get("from", ""))
            until = parse_local(query["to"]) if query.get("to") else timezone.now()
            return between(since, until), ""
        key = query.get("window", DEFAULT_PRESET)
        if key not in PRESETS:
            raise ValueError(_("Choose one of the windows offered."))
        return last(key), ""
    except ValueError as exc:
        return last(DEFAULT_PRESET), str(exc)


def span_text(start: datetime, end: datetime) -> str:
    """``Dec 2, 08:00 - 09:00`` (with an en dash; the day repeated when it changes)."""
    first = formats.date_format(start, "M j, H:i")
    same_day = start.date() == end.date()
    return f"{first} – {formats.date_format(end, 'H:i' if same_day else 'M j, H:i')}"


def axis_labels(buckets: list[BucketCounts], window: Window) -> list[tuple[str, ...]]:
    """At most MAX_LABELS labels, on round times (every 3 hours, each midnight, …), the day
    under the first label of each day; the other buckets get none."""
    step = window.step.seconds
    every = max(1, math.ceil(len(buckets) / MAX_LABELS))
    while not (DAY % (step * every) == 0 or (step * every) % DAY == 0):
        every += 1
    unit = step * every
    labels: list[tuple[str, ...]] = []
    shown_day = ""
    for counts in buckets:
        edge = counts.bucket.edge
        seconds = edge.hour * 3600 + edge.minute * 60
        if unit <= DAY:
            aligned = seconds % unit == 0
        else:
            aligned = seconds == 0 and edge.toordinal() % (unit // DAY) == 0
        if not aligned:
            labels.append(())
            continue
        day = formats.date_format(edge, "M j")
        if step >= DAY:
            labels.append((day,))
        else:
            time = formats.date_format(edge, "H:i")
            labels.append((time, day) if day != shown_day else (time,))
        shown_day = day
    return labels


def chart_columns(
    buckets: list[BucketCounts], window: Window, links: Links
) -> tuple[list[charts.Column], list[charts.Column]]:
    """Each bucket as a column of the states chart and of the failure-rate chart."""
    stacked, rates = [], []
    for counts, label in zip(buckets, axis_labels(buckets, window), strict=True):
        bucket = counts.bucket
        title = span_text(bucket.start, bucket.end)
        per_status = {s: links.rows(bucket.start, bucket.end, status=s) for s in counts.by_status}
        stacked.append(charts.Column(label, title, dict(counts.by_status), per_status))
        rate = counts.failure_rate
        failures: dict[str | None, str] = {
            None: links.rows(bucket.start, bucket.end, status=states.FAILURE)
        }
        rates.append(charts.Column(label, title, {} if rate is None else {None: rate}, failures))
    return stacked, rates


# The queue-wait chart's lines: the median and the 95th percentile of each bucket's waits.
WAIT_SERIES = (
    charts.Series("p50", "p50", charts.STATUS_COLOURS["STARTED"]),
    charts.Series("p95", "p95", charts.STATUS_COLOURS["RETRY"]),
)


def wait_chart(
    over_time: list[BucketDurations], labels: list[tuple[str, ...]], links: Links
) -> Any:
    """The queue waits of each bucket (p50 and p95) as lines; a bucket without a wait
    breaks them."""
    columns = []
    for entry, label in zip(over_time, labels, strict=True):
        bucket, waits = entry.bucket, entry.durations
        values: dict[str | None, float] = {}
        if waits.count:
            values = {"p50": waits.quantile(0.5), "p95": waits.quantile(0.95)}
        rows = links.rows(bucket.start, bucket.end)
        title = span_text(bucket.start, bucket.end)
        columns.append(charts.Column(label, title, values, {"p50": rows, "p95": rows}))
    top = max((max(c.values.values(), default=0) for c in columns), default=0)
    grid = charts.ticks(top, smallest=0.001)
    return charts.lines(
        "celery-sa-queue-wait-chart",
        _("Queue wait per bucket"),
        _(
            "The median (p50) and 95th percentile (p95) of the queue waits of each "
            "bucket's newest results; see the table below."
        ),
        columns,
        WAIT_SERIES,
        grid,
        format_runtime,
        format_runtime,
    )


@admin.register(Overview)
class OverviewAdmin(ResultAdmin):
    """One page, no rows: the list of this "model" is the overview."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("celery_sa.view_taskresult")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view(self.overview_view)
        return [path("", view, name="{}_{}_changelist".format(*info))]

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            with replica_reads() as reads:
                if reads is not None and not reads.answered:
                    self.message_user(request, reads.problem, level=messages.WARNING)
                return rendered(self.overview_page(request, reads))
        except DatabaseError as exc:
            return self.table_problem(request, exc)

    def overview_page(self, request: HttpRequest, reads: ReplicaReads | None) -> HttpResponse:
        window, problem = window_of(request.GET)
        overview = collect_overview(window)
        links = Links()
        stacked, rates = chart_columns(overview.buckets, window, links)
        over_time = overview.queue_waits_over_time or []
        series = charts.stack_order(list(overview.by_status))
        zone = timezone.get_current_timezone()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Overview"),
            "list_breadcrumbs": django.VERSION >= (6, 0),
            "opts": self.opts,
            "overview": overview,
            "problem": problem,
            "presets": [(key, PRESETS[key].span) for key in PRESETS],
            "window_from": formats.date_format(window.since, "Y-m-d\\TH:i"),
            "window_to": formats.date_format(window.until, "Y-m-d\\TH:i"),
            "zone": zone_name(zone),
            "offset": formats.date_format(window.until, "O"),
            "states_chart": charts.stacked_bars(
                "celery-sa-states-chart",
                _("Results per bucket by state"),
                _("Task results done in each bucket, stacked by state; see the table below."),
                stacked,
                series,
            ),
            "rate_chart": charts.line(
                "celery-sa-failure-chart",
                _("Failure rate per bucket"),
                _("Failures as a share of the results that finished in each bucket."),
                rates,
                states.FAILURE,
            ),
            "queue_wait_chart": wait_chart(over_time, axis_labels(overview.buckets, window), links),
            "queue_wait_rows": [
                (span_text(entry.bucket.start, entry.bucket.end), entry) for entry in over_time
            ],
            "wait_series": [line.name for line in WAIT_SERIES],
            "bucket_sample": over_time[0].limit if over_time else 0,
            "series": series,
            "bucket_rows": self.bucket_rows(overview.buckets, series, links),
            "totals": [
                (status, rows, links.rows(window.since, window.until, status=status))
                for status, rows in overview.by_status.items()
            ],
            "all_url": links.rows(window.since, window.until),
            "failing": [
                (entry, links.rows(window.since, window.until, states.FAILURE, entry.name))
                for entry in overview.failing
            ],
            "unfinished": [
                (entry, links.rows(status=entry.status)) for entry in overview.unfinished
            ],
            "replica": reads if reads is not None and reads.answered else None,
            "replication": reads.replication() if reads is not None else None,
            "chords": overview.chords,
            "chords_url": reverse("admin:celery_sa_chord_changelist")
            if request.user.has_perm("celery_sa.view_chord")
            else "",
            "stuck_after": format_runtime(overview.chords.stuck_after.total_seconds())
            if overview.chords
            else "",
            "runtimes": [
                (entry, links.rows(window.since, window.until, name=entry.name))
                for entry in overview.runtimes.by_name[:TOP_NAMES]
            ],
            "queue_waits": [
                (entry, links.rows(window.since, window.until, name=entry.name))
                for entry in overview.queue_waits.by_name[:TOP_NAMES]
            ],
            "retried": [
                (entry, links.rows(window.since, window.until, name=entry.name))
                for entry in (overview.retried.retried if overview.retried else [])
            ],
        }
        return TemplateResponse(request, "admin/celery_sa/overview.html", context)

    @staticmethod
    def bucket_rows(
        buckets: list[BucketCounts], series: list[str | None], links: Links
    ) -> list[tuple[str, list[tuple[int, str]], int, str, float | None, int]]:
        rows = []
        for counts in buckets:
            start, end = counts.bucket.start, counts.bucket.end
            cells = [
                (counts.by_status.get(status, 0), links.rows(start, end, status=status))
                for status in series
            ]
            rows.append(
                (
                    span_text(start, end),
                    cells,
                    counts.total,
                    links.rows(start, end),
                    counts.failure_rate,
                    counts.finished,
                )
            )
        return rows
