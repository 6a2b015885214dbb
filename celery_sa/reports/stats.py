"""What the result table says about the last hours: counts by status and task name, failure
rates, each task's newest failure, queue waits and retries (the overview's queries, as a
report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery_sa.reports.chords import WaitingChords, waiting_chords
from celery_sa.reports.queries import (
    Failure,
    Unfinished,
    distinct,
    done_between,
    failing_names,
    in_one_snapshot,
    per_status,
    per_value,
    unfinished,
)
from celery_sa.reports.retries import Retried, retried
from celery_sa.reports.runtimes import QUEUE_WAIT, Runtime, runtimes


@dataclass
class NameStats:
    """One task name's results in the window."""

    name: str | None
    total: int = 0
    failures: int = 0
    newest_failure: Failure | None = None

    @property
    def failure_rate(self) -> float:
        """Failures as a share of this name's results in the window."""
        return self.failures / self.total if self.total else 0.0


def _quantiles(durations: list[Runtime]) -> list[dict[str, Any]]:
    return [
        {
            "name": entry.name,
            "results": entry.count,
            "p50_seconds": entry.quantile(0.5),
            "p95_seconds": entry.quantile(0.95),
        }
        for entry in durations
    ]


@dataclass
class Stats:
    """Task results done in ``[since, until)``."""

    since: datetime
    until: datetime
    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_name: list[NameStats] = field(default_factory=list)
    runtimes: list[Runtime] = field(default_factory=list)
    """Runtimes by name (start to done), of the window's newest results."""
    queue_waits: list[Runtime] = field(default_factory=list)
    """Queue waits by name (tasks that ran once), of the window's newest results."""
    retried: list[Retried] | None = None
    """Retries by name and exception; None without the attempt table."""
    unfinished: list[Unfinished] = field(default_factory=list)
    """The unfinished tasks now (the whole table, not the window), by state."""
    chords: WaitingChords | None = None
    """The chords waiting now; None without celery_sa's chord table."""

    def age(self, entry: Unfinished) -> float | None:
        """Seconds since ``entry``'s oldest task was last updated, at the window's end."""
        if entry.oldest_date is None:
            return None
        return max(0.0, (self.until - entry.oldest_date).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "total": self.total,
            "by_status": self.by_status,
            "by_name": [
                {
                    "name": name.name,
                    "total": name.total,
                    "failures": name.failures,
                    "failure_rate": round(name.failure_rate, 4),
                    "newest_failure": (
                        {
                            "task_id": name.newest_failure.task_id,
                            "date_done": name.newest_failure.date_done.isoformat(),
                            "exception": name.newest_failure.exception,
                        }
                        if name.newest_failure
                        else None
                    ),
                }
                for name in self.by_name
            ],
            "runtimes": _quantiles(self.runtimes),
            "queue_waits": _quantiles(self.queue_waits),
            "retries": None
            if self.retried is None
            else [
                {"name": entry.name, "exception": entry.exception, "retries": entry.retries}
                for entry in self.retried
            ],
            "unfinished": [
                {
                    "state": entry.status,
                    "tasks": entry.count,
                    "oldest_task_id": entry.oldest_task_id or None,
                    "oldest_age_seconds": self.age(entry),
                }
                for entry in self.unfinished
            ],
            "chords": None
            if self.chords is None
            else {
                "waiting": self.chords.waiting,
                "stuck": self.chords.stuck,
                "stuck_after_seconds": self.chords.stuck_after.total_seconds(),
                "oldest_wait_seconds": self.chords.oldest_wait,
            },
        }


def collect_stats(since: datetime, until: datetime) -> Stats:
    """Counts of the task results done in ``[since, until)``: per status and per name from
    index ranges, failures per name from the ``(status, date_done, name)`` index, one row
    read per failing name for its newest exception."""
    with in_one_snapshot():
        return _collect_stats(since, until)


def _collect_stats(since: datetime, until: datetime) -> Stats:
    window = done_between(since, until)
    by_status = per_status(window, distinct("status"))
    stats = Stats(since=since, until=until, total=sum(by_status.values()))
    stats.by_status = {status or "(none)": rows for status, rows in by_status.items()}
    per_name = per_value(window, "name")
    # The command's rates are over all of a name's results, counted once above.
    failing = {entry.name: entry for entry in failing_names(since, until, totals=per_name)}
    for name, rows in per_name.items():
        entry = NameStats(name, total=rows)
        if name in failing:
            entry.failures = failing[name].failures
            entry.newest_failure = failing[name].newest
        stats.by_name.append(entry)
    stats.by_name.sort(key=lambda entry: (-entry.total, entry.name or ""))
    stats.runtimes = runtimes(window).by_name
    stats.queue_waits = runtimes(window, span=QUEUE_WAIT).by_name
    stats.retried = retried(since, until)
    stats.unfinished = unfinished()
    stats.chords = waiting_chords()
    return stats
