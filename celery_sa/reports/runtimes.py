"""Durations by task name from the times celery_sa's backend records: runtimes (the last
execution's start to ``date_done``) and queue waits (the first send to the start, for tasks
that ran once): the overview's slowest and longest-waiting names and the metrics'
summaries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from celery import states
from django.db import connections
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, Q, QuerySet
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Cast

from celery_sa.models import TaskResult, has_column
from celery_sa.reports.queries import all_of, number
from celery_sa.reports.window import Bucket, Window

# Runtimes come from the newest results of the window only: reading every row's start time
# would read the whole table (no index holds it).
RUNTIME_SAMPLE = 5_000
# The overview reads each bucket's newest results, as many as this in all and at most
# BUCKET_SAMPLE a bucket.
WINDOW_SAMPLE = 3_000
BUCKET_SAMPLE = 200


@dataclass
class Runtime:
    """A task name's runtimes (seconds from start to done) among the sampled results."""

    name: str | None
    seconds: list[float] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.seconds)

    @property
    def total(self) -> float:
        return sum(self.seconds)

    def quantile(self, share: float) -> float:
        """The nearest-rank quantile: a runtime that happened, never an interpolation."""
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class Runtimes:
    """Runtimes by name over the newest ``sampled`` results of a window; ``recorded`` is
    False when the table has no ``date_started`` column."""

    recorded: bool
    sampled: int = 0
    complete: bool = True
    """Whether the sample is every result of the window."""
    by_name: list[Runtime] = field(default_factory=list)
    per_bucket: int = 0
    """The most results read from each bucket of the window (0: its newest ``sampled``)."""


@dataclass(frozen=True)
class Span:
    """What a duration is measured between: two columns of the task row."""

    start: str
    end: str
    ran_once: bool = False
    """Only tasks that were not retried (a retried task's last start is not its first)."""


RUNTIME = Span("date_started", "date_done")
QUEUE_WAIT = Span("date_sent", "date_started", ran_once=True)


def runtimes(
    window: QuerySet[TaskResult], sample: int = RUNTIME_SAMPLE, span: Span = RUNTIME
) -> Runtimes:
    """Durations (``span``: runtimes unless said) of the newest ``sample`` results of
    ``window`` (a date range) that record both ends (a walk down the ``date_done`` index,
    bounded whatever the window holds), longest p95 first."""
    if not recorded(window.db, span):
        return Runtimes(recorded=False)
    rows = list(
        newest(window, span)
        .annotate(took=duration(span))
        .values_list("name", "status", "took")[:sample]
    )
    by_name: dict[str | None, list[float]] = {}
    for name, status, spent in rows:
        if spent is not None and status in states.READY_STATES:
            by_name.setdefault(name, []).append(max(0.0, spent.total_seconds()))
    return Runtimes(True, len(rows), len(rows) < sample, ranked(by_name))


def ranked(by_name: dict[str | None, list[float]]) -> list[Runtime]:
    """Each name's durations, the longest p95 first."""
    runtimes = [Runtime(name, seconds) for name, seconds in by_name.items()]
    return sorted(runtimes, key=lambda r: (-r.quantile(0.95), r.name or ""))


@dataclass
class BucketDurations:
    """The durations of one bucket's newest results: ``sampled`` rows read, complete when
    they are all of the bucket's."""

    bucket: Bucket
    durations: Runtime
    sampled: int
    limit: int
    """The most results read from a bucket."""

    @property
    def complete(self) -> bool:
        return self.sampled < self.limit


@dataclass
class WindowDurations:
    """A window's runtimes and queue waits by name, and its queue waits by bucket, from
    each bucket's newest results (a sample spread over the whole window)."""

    runtimes: Runtimes
    queue_waits: Runtimes
    over_time: list[BucketDurations] | None
    """Each bucket's queue waits; None when the table does not record them."""


def window_durations(window: Window) -> WindowDurations:
    """Runtimes and queue waits of ``window``'s buckets' newest results, at most
    BUCKET_SAMPLE a bucket (fewer past 25 buckets: WINDOW_SAMPLE in all), in one statement
    where the database can order and cut each part of a UNION ALL (one a bucket
    elsewhere: SQLite), each part a walk down the ``date_done`` index."""
    buckets = window.buckets()
    rows = TaskResult.objects.all()
    spans = [span for span in (RUNTIME, QUEUE_WAIT) if recorded(rows.db, span)]
    if not spans:
        return WindowDurations(Runtimes(False), Runtimes(False), None)
    each = max(1, min(BUCKET_SAMPLE, WINDOW_SAMPLE // max(1, len(buckets))))
    took = {f"took_{i}": duration(span) for i, span in enumerate(spans)}
    # Built once and narrowed per bucket: building the ORM's filters costs more here than
    # the statement takes to run.
    base = rows.order_by("-date_done").annotate(**took)
    queries = [
        base.filter(date_done__gte=bucket.start, date_done__lt=bucket.end)
        .annotate(bucket=number(i))
        .values_list("bucket", "name", "status", "retries", *took)[:each]
        for i, bucket in enumerate(buckets)
    ]
    if connections[rows.db].features.supports_slicing_ordering_in_compound:
        found = all_of(queries)
    else:
        found = [row for query in queries for row in query]
    sampled = [0] * len(buckets)
    by_name: list[dict[str | None, list[float]]] = [{} for _ in spans]
    per_bucket: list[list[float]] = [[] for _ in buckets]
    waits = spans.index(QUEUE_WAIT) if QUEUE_WAIT in spans else None
    for row in found:
        sampled[row[0]] += 1
        if row[2] not in states.READY_STATES:
            continue
        for i, span in enumerate(spans):
            spent = row[4 + i]
            if spent is None or (span.ran_once and row[3]):
                continue
            seconds = max(0.0, spent.total_seconds())
            by_name[i].setdefault(row[1], []).append(seconds)
            if i == waits:
                per_bucket[row[0]].append(seconds)
    complete = all(n < each for n in sampled)
    measured = {
        span: Runtimes(True, len(found), complete, ranked(names), per_bucket=each)
        for span, names in zip(spans, by_name, strict=True)
    }
    return WindowDurations(
        runtimes=measured.get(RUNTIME, Runtimes(False)),
        queue_waits=measured.get(QUEUE_WAIT, Runtimes(False)),
        over_time=None
        if waits is None
        else [
            BucketDurations(bucket, Runtime(None, seconds), sampled=n, limit=each)
            for bucket, seconds, n in zip(buckets, per_bucket, sampled, strict=True)
        ],
    )


def recorded(alias: str, span: Span) -> bool:
    """Whether the task table has the columns ``span`` is measured between."""
    return all(has_column(alias, name) for name in (span.start, span.end) if name != "date_done")


def newest(window: QuerySet[TaskResult], span: Span) -> QuerySet[TaskResult]:
    """``window``'s results newest first; only those that ran once for a ``ran_once``
    span."""
    if span.ran_once:
        window = window.filter(Q(retries=0) | Q(retries__isnull=True))
    return window.order_by("-date_done")


def duration(span: Span) -> ExpressionWrapper[CombinedExpression]:
    """``span``'s duration in a row (None where either end is missing)."""
    # Subtracted in SQL: both columns hold wall time of the same zone, and converting
    # 20,000 datetimes in Python would cost more than the query.
    return ExpressionWrapper(
        Cast(span.end, DateTimeField()) - Cast(span.start, DateTimeField()),
        output_field=DurationField(),
    )
