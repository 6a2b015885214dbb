"""The overview's figures for Prometheus: a collector that reads them from the task table
at each scrape, so they survive restarts and agree with the admin's page.

Its cost is bounded: the counts are index ranges over the metrics window, the unfinished
counts index ranges over those states, the runtimes the newest RUNTIME_SAMPLE results.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from celery import states
from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from celery_sa.db.replica import ReplicaReads
from celery_sa.reports.chords import waiting_chords
from celery_sa.reports.queries import (
    distinct,
    done_between,
    in_one_snapshot,
    one_of,
    per_value,
    unfinished,
)
from celery_sa.reports.retries import retried
from celery_sa.reports.runtimes import QUEUE_WAIT, Runtimes, runtimes

QUANTILES = (0.5, 0.95)


def per_name_and_status(since: datetime, until: datetime) -> dict[tuple[Any, Any], int]:
    """Results done in the window per (name, status), SUCCESS as each name's rest: its
    results from ``(name, date_done)`` less the others from ``(status, date_done, name)``
    (grouping every row of a window by two columns costs three times as much)."""
    window = done_between(since, until)
    others = [status for status in distinct("status") if status != states.SUCCESS]
    counts: dict[tuple[Any, Any], int] = {}
    if others:
        grouped = (
            window.filter(one_of("status", others))
            .order_by()
            .values_list("name", "status")
            .annotate(rows=Count("*"))
            .values_list("name", "status", "rows")
        )
        counts = {(name, status): rows for name, status, rows in grouped}
    for name, rows in per_value(window, "name").items():
        rest = rows - sum(n for (other, _status), n in counts.items() if other == name)
        if rest > 0:
            counts[(name, states.SUCCESS)] = rest
    return counts


class TaskResultsCollector(Collector):
    """Task results done in the last ``window``, by task name and state; unfinished tasks
    now and the age of the oldest; runtimes by task name where start times are recorded."""

    def __init__(self, window: timedelta, replica: ReplicaReads | None = None) -> None:
        self.window = window
        self.replica = replica

    def collect(self) -> Iterator[Metric]:
        # Collected whole before the first is yielded: the transaction ends here.
        with in_one_snapshot():
            return iter(list(self.read()))

    def read(self) -> Iterator[Metric]:
        until = timezone.now()
        since = until - self.window
        seconds = self.window.total_seconds()
        yield GaugeMetricFamily(
            "celery_sa_window_seconds",
            "How far back celery_sa_task_results, celery_sa_task_runtime_seconds and "
            "celery_sa_task_queue_wait_seconds look.",
            value=seconds,
        )
        results = GaugeMetricFamily(
            "celery_sa_task_results",
            "Task results done in the window, by task name and state.",
            labels=["name", "state"],
        )
        for (name, status), rows in sorted(per_name_and_status(since, until).items(), key=str):
            results.add_metric([name or "", status or ""], rows)
        yield results
        yield from self.unfinished(until)
        yield self.runtimes(since, until)
        yield self.queue_waits(since, until)
        yield from self.retries(since, until)
        yield from self.chords()
        yield from self.replica_state()

    def unfinished(self, now: datetime) -> Iterator[Metric]:
        count = GaugeMetricFamily(
            "celery_sa_tasks_unfinished",
            "Tasks whose latest state is unfinished (PENDING, RECEIVED, STARTED, RETRY).",
            labels=["state"],
        )
        age = GaugeMetricFamily(
            "celery_sa_tasks_unfinished_oldest_age_seconds",
            "Seconds since the oldest unfinished task of each state was last updated.",
            labels=["state"],
        )
        for entry in unfinished():
            count.add_metric([entry.status], entry.count)
            if entry.oldest_date is not None:
                age.add_metric([entry.status], max(0.0, (now - entry.oldest_date).total_seconds()))
        yield count
        yield age

    def runtimes(self, since: datetime, until: datetime) -> Metric:
        summary = SummaryMetricFamily(
            "celery_sa_task_runtime_seconds",
            "Seconds from the last start to done of the newest results in the window that "
            "record their start (celery_sa's backend), by task name.",
            labels=["name"],
        )
        return by_name(summary, runtimes(done_between(since, until)))

    def queue_waits(self, since: datetime, until: datetime) -> Metric:
        summary = SummaryMetricFamily(
            "celery_sa_task_queue_wait_seconds",
            "Seconds from the first send to the start of the newest results in the window "
            "that record both and ran once (celery_sa's backend), by task name.",
            labels=["name"],
        )
        return by_name(summary, runtimes(done_between(since, until), span=QUEUE_WAIT))

    def retries(self, since: datetime, until: datetime) -> Iterator[Metric]:
        found = retried(since, until)
        if found is None:  # no attempt table yet: no figure rather than a false 0
            return
        family = GaugeMetricFamily(
            "celery_sa_task_retries",
            "Executions that ended in a retry in the window, by task name and exception.",
            labels=["name", "exception"],
        )
        for entry in found:
            family.add_metric([entry.name or "", entry.exception or ""], entry.retries)
        yield family

    def chords(self) -> Iterator[Metric]:
        found = waiting_chords()
        if found is None:  # no chord table (Celery's own backend): no figure, not a false 0
            return
        yield GaugeMetricFamily(
            "celery_sa_chords_waiting",
            "Chords celery_sa's backend counts whose callback has not been sent yet.",
            value=found.waiting,
        )
        yield GaugeMetricFamily(
            "celery_sa_chords_stuck",
            "Waiting chords started longer ago than CELERY_SA_CHORD_STUCK_AFTER.",
            value=found.stuck,
        )
        yield GaugeMetricFamily(
            "celery_sa_chords_stuck_after_seconds",
            "CELERY_SA_CHORD_STUCK_AFTER: how long a chord waits before it counts as stuck.",
            value=found.stuck_after.total_seconds(),
        )
        yield GaugeMetricFamily(
            "celery_sa_chords_waiting_oldest_age_seconds",
            "Seconds since the oldest waiting chord was started (0 when none waits).",
            value=found.oldest_wait or 0.0,
        )

    def replica_state(self) -> Iterator[Metric]:
        if self.replica is None:  # no replica is set
            return
        yield GaugeMetricFamily(
            "celery_sa_replica_up",
            "1 when the read replica answered and these figures are read from it, 0 when "
            "they are read from the result database itself.",
            value=1 if self.replica.answered else 0,
        )
        replication = self.replica.replication()
        if replication is not None and replication.lag_seconds is not None:
            yield GaugeMetricFamily(
                "celery_sa_replica_lag_seconds",
                "How far the read replica is behind the result database.",
                value=replication.lag_seconds,
            )
        if replication is not None:
            yield GaugeMetricFamily(
                "celery_sa_replica_replicating",
                "1 while the read replica replays the result database's changes.",
                value=1 if replication.running else 0,
            )


def by_name(summary: SummaryMetricFamily, durations: Runtimes) -> SummaryMetricFamily:
    """``summary`` with each name's quantiles, count and sum of ``durations``."""
    for entry in durations.by_name:
        name = entry.name or ""
        for share in QUANTILES:
            summary.add_sample(
                summary.name, {"name": name, "quantile": str(share)}, entry.quantile(share)
            )
        summary.add_metric([name], entry.count, entry.total)
    return summary
