"""What the task table says about a window, each figure read from an index.

Shared by the admin's overview page, ``manage.py celery_sa_stats`` and the Prometheus
metrics. The indexes are celery_sa's: ``(status, date_done, name)`` counts states and
failing names, ``(name, date_done)`` counts a name's results, ``date_done`` finds the newest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import states
from django.db import connections, transaction
from django.db.models import (
    Count,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Value,
)
from django.db.models.functions import Right

from celery_sa.db import adapters
from celery_sa.models import TaskResult
from celery_sa.reports.window import Bucket, Window

UNFINISHED = (states.PENDING, states.RECEIVED, states.STARTED, states.RETRY)
# The traceback's last characters hold the exception line; the rest is not needed here.
TRACEBACK_TAIL = 500


def in_one_snapshot() -> transaction.Atomic:
    """One transaction for all the reads of a page, a report or a scrape: one snapshot of
    the table on MySQL (REPEATABLE READ) and SQLite, so its figures add up."""
    return transaction.atomic(using=TaskResult.objects.db)


def done_between(since: datetime, until: datetime) -> QuerySet[TaskResult]:
    """The results done in ``[since, until)``; the field turns the bounds into the zone
    Celery stored ``date_done`` in."""
    return TaskResult.objects.filter(date_done__gte=since, date_done__lt=until)


def distinct(column: str) -> list[Any]:
    """Every value of an indexed column in the table (None for NULL), one index seek each."""
    manager = TaskResult.objects
    connection = connections[manager.db]
    found: list[Any] = list(
        adapters.get_operations(connection).distinct_values(
            connection, TaskResult._meta.db_table, column
        )
    )
    if manager.filter(**{f"{column}__isnull": True}).exists():
        found.append(None)
    return found


def per_value(rows: QuerySet[TaskResult], column: str) -> dict[Any, int]:
    """Rows per value of ``column``, most first: one index range count per value, where a
    GROUP BY would read every row of the window on MySQL."""
    values = distinct(column)
    found = all_of(
        [
            rows.filter(one_of(column, [value]))
            .order_by()
            .annotate(range=number(i))
            .values("range")
            .annotate(rows=Count("*"))
            .values_list("range", "rows")
            for i, value in enumerate(values)
        ]
    )
    counts = {values[i]: n for i, n in found if n}
    return dict(sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))))


def one_of(column: str, values: Iterable[Any]) -> Q:
    """``column`` is one of ``values``, None meaning NULL: a list the index can seek."""
    values = list(values)
    present = [value for value in values if value is not None]
    condition = Q(**{f"{column}__in": present})
    if None in values:
        condition |= Q(**{f"{column}__isnull": True})
    return condition


def per_status(rows: QuerySet[TaskResult], among: list[str | None]) -> dict[str | None, int]:
    """``rows`` (a date range) per status, most first (see :func:`per_status_each`)."""
    return per_status_each([rows], among)[0]


def per_status_each(
    ranges: list[QuerySet[TaskResult]], among: list[str | None]
) -> list[dict[str | None, int]]:
    """Each of ``ranges`` (date ranges) per status, most first, in two statements whatever
    their number (each a UNION ALL of one query a range).

    Most rows are SUCCESS: the others are counted on the ``(status, date_done, …)`` index
    (naming them keeps MySQL there), SUCCESS is the rest of a count on the narrower
    ``date_done`` index. Callers read :func:`in_one_snapshot`, so that both counts see the
    same rows where the database can (MySQL, SQLite)."""
    counts: list[dict[str | None, int]] = [{} for _ in ranges]
    if not among or not ranges:
        return counts
    others = [status for status in among if status != states.SUCCESS]
    if others:
        per_other = [
            rows.filter(one_of("status", others))
            .order_by()
            .annotate(range=number(i))
            .values("range", "status")
            .annotate(rows=Count("*"))
            .values_list("range", "status", "rows")
            for i, rows in enumerate(ranges)
        ]
        for i, status, found in all_of(per_other):
            counts[i][status] = found
    if states.SUCCESS in among:
        totals = [
            rows.order_by()
            .annotate(range=number(i))
            .values("range")
            .annotate(rows=Count("*"))
            .values_list("range", "rows")
            for i, rows in enumerate(ranges)
        ]
        for i, total in all_of(totals):
            counts[i][states.SUCCESS] = total - sum(counts[i].values())
    return [
        dict(sorted(((s, n) for s, n in found.items() if n > 0), key=lambda c: (-c[1], c[0] or "")))
        for found in counts
    ]


def number(value: int) -> Value:
    """A constant column saying which of several queries a row comes from."""
    return Value(value, output_field=IntegerField())


PER_STATEMENT = 100
"""Queries one UNION ALL joins, or seeks one OR joins, at most (SQLite takes 500 terms)."""


def all_of(queries: list[QuerySet[Any, Any]]) -> list[Any]:
    """The rows of several queries, a hundred to a statement (UNION ALL): round trips
    cost more than the counts on a remote database."""
    found: list[Any] = []
    for start in range(0, len(queries), PER_STATEMENT):
        first, *rest = queries[start : start + PER_STATEMENT]
        found += first.union(*rest, all=True) if rest else first
    return found


@dataclass
class BucketCounts:
    bucket: Bucket
    by_status: dict[str | None, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def failures(self) -> int:
        return self.by_status.get(states.FAILURE, 0)

    @property
    def failure_rate(self) -> float | None:
        """Failures as a share of the results that finished (None when none did)."""
        return self.failures / self.finished if self.finished else None

    @property
    def finished(self) -> int:
        return sum(self.by_status.get(state, 0) for state in states.READY_STATES)


def bucket_counts(window: Window, among: list[str | None]) -> list[BucketCounts]:
    """Rows per status in each bucket: two index bounds a bucket, no date arithmetic in SQL,
    so buckets follow the viewer's zone whatever zone the rows were written in."""
    buckets = window.buckets()
    ranges = [done_between(bucket.start, bucket.end) for bucket in buckets]
    return [
        BucketCounts(bucket, counts)
        for bucket, counts in zip(buckets, per_status_each(ranges, among), strict=True)
    ]


@dataclass(frozen=True)
class Failure:
    """The newest failure of a task name in the window."""

    pk: int
    task_id: str
    date_done: datetime
    exception: str


@dataclass
class NameFailures:
    """A task name's failures in the window, against its results there that finished."""

    name: str | None
    failures: int
    total: int = 0
    newest: Failure | None = None

    @property
    def failure_rate(self) -> float:
        return self.failures / self.total if self.total else 0.0


def failing_names(
    since: datetime,
    until: datetime,
    limit: int | None = None,
    totals: dict[str | None, int] | None = None,
) -> list[NameFailures]:
    """The names that failed in the window, most failures first, with their results there
    and newest failure: the failures from the ``(status, date_done, name)`` index, each
    name's results from ``(name, date_done)``, one row read per name for its exception."""
    window = done_between(since, until)
    grouped = (
        window.filter(status=states.FAILURE)
        .order_by()
        .values_list("name")
        .annotate(rows=Count("*"), newest=Max("date_done"))
        .values_list("name", "rows", "newest")
    )
    ranked = sorted(grouped, key=lambda item: (-item[1], item[0] or ""))[:limit]
    if totals is None:
        totals = finished_per_name(window, [name for name, _rows, _newest in ranked])
    newest = newest_failures(window, {name: done for name, _rows, done in ranked})
    return [
        NameFailures(name, rows, total=totals.get(name, rows), newest=newest.get(name))
        for name, rows, _done in ranked
    ]


def finished_per_name(
    window: QuerySet[TaskResult], names: list[str | None]
) -> dict[str | None, int]:
    """The results of ``names`` that finished (the base of the page's failure rates): each
    name's results from ``(name, date_done)``, less its unfinished ones from ``(status, …)``."""
    totals = name_totals(window, names)
    moving = [status for status in distinct("status") if status not in states.READY_STATES]
    if moving and names:
        for name, rows in name_totals(window.filter(one_of("status", moving)), names).items():
            totals[name] -= rows
    return totals


def name_totals(window: QuerySet[TaskResult], names: list[str | None]) -> dict[str | None, int]:
    if not names:
        return {}
    return dict(
        window.filter(one_of("name", names))
        .order_by()
        .values_list("name")
        .annotate(rows=Count("*"))
        .values_list("name", "rows")
    )


def newest_failures(
    window: QuerySet[TaskResult], newest: dict[str | None, datetime | None]
) -> dict[str | None, Failure]:
    """Each name's failure done at ``newest[name]`` (its newest, the highest id of a tie):
    an exact seek on ``(status, date_done, name)`` each, a hundred names to a query."""
    wanted = [(name, done) for name, done in newest.items() if done is not None]
    found: dict[str | None, Failure] = {}
    for start in range(0, len(wanted), PER_STATEMENT):
        seeks = Q()
        for name, done in wanted[start : start + PER_STATEMENT]:
            seeks |= one_of("name", [name]) & Q(date_done=done)
        rows = (
            window.filter(seeks, status=states.FAILURE)
            .annotate(tail=Right("traceback", TRACEBACK_TAIL))
            .order_by("id")
            .values_list("pk", "name", "task_id", "date_done", "tail")
        )
        for pk, name, task_id, done_at, tail in rows:
            if done_at is not None and newest.get(name) == done_at:
                found[name] = Failure(pk, task_id or "", done_at, exception_line(tail))
    return found


def exception_line(traceback: str | None) -> str:
    """The last line of a traceback: the exception and its message."""
    lines = [line.strip() for line in (traceback or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass(frozen=True)
class Unfinished:
    """Tasks in one unfinished state now, and the one that has waited longest."""

    status: str
    count: int
    oldest_pk: int | None
    oldest_task_id: str
    oldest_date: datetime | None


def unfinished() -> list[Unfinished]:
    """Every unfinished state's count and oldest row, from the ``(status, date_done)`` index;
    the whole table, not a window: they are what is open now."""
    grouped = (
        TaskResult.objects.filter(status__in=UNFINISHED)
        .order_by()
        .values_list("status")
        .annotate(rows=Count("*"), oldest=Min("date_done"))
        .values_list("status", "rows", "oldest")
    )
    found = []
    for status, rows, oldest in sorted(grouped, key=lambda item: UNFINISHED.index(item[0])):
        first = (
            TaskResult.objects.filter(status=status, date_done=oldest)
            .order_by("id")
            .values_list("pk", "task_id")
            .first()
            if oldest is not None
            else None
        )
        pk, task_id = first or (None, "")
        found.append(Unfinished(str(status), rows, pk, task_id or "", oldest))
    return found
