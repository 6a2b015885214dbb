"""Durations by task name from the times celery_sa's backend records: runtimes (the last
execution's start to ``date_done``) and queue waits (the first send to the start, for tasks
that ran once): the overview's slowest and longest-waiting names and the metrics'
summaries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from celery import states
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, Q, QuerySet
from django.db.models.functions import Cast

from celery_sa.models import TaskResult, has_column

# Runtimes come from the newest results of the window only: reading every row's start time
# would read the whole table (no index holds it).
RUNTIME_SAMPLE = 5_000


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
    own = [name for name in (span.start, span.end) if name != "date_done"]
    if not all(has_column(window.db, name) for name in own):
        return Runtimes(recorded=False)
    # Subtracted in SQL: both columns hold wall time of the same zone, and converting
    # 20,000 datetimes in Python would cost more than the query.
    took = ExpressionWrapper(
        Cast(span.end, DateTimeField()) - Cast(span.start, DateTimeField()),
        output_field=DurationField(),
    )
    if span.ran_once:
        window = window.filter(Q(retries=0) | Q(retries__isnull=True))
    rows = list(
        window.order_by("-date_done")
        .annotate(took=took)
        .values_list("name", "status", "took")[:sample]
    )
    by_name: dict[str | None, Runtime] = {}
    for name, status, runtime in rows:
        if runtime is None or status not in states.READY_STATES:
            continue
        by_name.setdefault(name, Runtime(name)).seconds.append(max(0.0, runtime.total_seconds()))
    ranked = sorted(by_name.values(), key=lambda r: (-r.quantile(0.95), r.name or ""))
    return Runtimes(True, sampled=len(rows), complete=len(rows) < sample, by_name=ranked)
