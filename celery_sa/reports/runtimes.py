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
from celery_sa.reports.queries import all_of, done_between, number
from celery_sa.reports.window import Bucket, Window

# Runtimes come from the newest results of the window only: reading every row's start time
# would read the whole table (no index holds it).
RUNTIME_SAMPLE = 5_000
# Over time, the newest results of each bucket, as many as this in all and at most
# BUCKET_SAMPLE a bucket.
OVER_TIME_SAMPLE = 6_000
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
    took = duration(span)
    rows = list(
        newest(window, span).annotate(took=took).values_list("name", "status", "took")[:sample]
    )
    by_name: dict[str | None, Runtime] = {}
    for name, status, runtime in rows:
        if runtime is None or status not in states.READY_STATES:
            continue
        by_name.setdefault(name, Runtime(name)).seconds.append(max(0.0, runtime.total_seconds()))
    ranked = sorted(by_name.values(), key=lambda r: (-r.quantile(0.95), r.name or ""))
    return Runtimes(True, sampled=len(rows), complete=len(rows) < sample, by_name=ranked)


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


def over_time(window: Window, span: Span = QUEUE_WAIT) -> list[BucketDurations] | None:
    """Durations (queue waits unless said) of each bucket of ``window``: its newest
    results, at most BUCKET_SAMPLE (fewer past 30 buckets), from one statement where the
    database can order and cut each part of a UNION ALL, one a bucket elsewhere (SQLite);
    None when the table does not record them."""
    buckets = window.buckets()
    rows = TaskResult.objects.all()
    if not recorded(rows.db, span):
        return None
    each = max(1, min(BUCKET_SAMPLE, OVER_TIME_SAMPLE // max(1, len(buckets))))
    queries = [
        newest(done_between(bucket.start, bucket.end), span)
        .annotate(bucket=number(i), took=duration(span))
        .values_list("bucket", "status", "took")[:each]
        for i, bucket in enumerate(buckets)
    ]
    if connections[rows.db].features.supports_slicing_ordering_in_compound:
        found = all_of(queries)
    else:
        found = [row for query in queries for row in query]
    sampled = [0] * len(buckets)
    per_bucket = [Runtime(None) for _ in buckets]
    for i, status, took in found:
        sampled[i] += 1
        if took is not None and status in states.READY_STATES:
            per_bucket[i].seconds.append(max(0.0, took.total_seconds()))
    return [
        BucketDurations(bucket, spans, sampled=n, limit=each)
        for bucket, spans, n in zip(buckets, per_bucket, sampled, strict=True)
    ]


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
