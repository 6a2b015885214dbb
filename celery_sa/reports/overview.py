"""Everything the overview page shows about a window, read in one snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from celery import states

from celery_sa.reports.chords import WaitingChords, waiting_chords
from celery_sa.reports.queries import (
    BucketCounts,
    NameFailures,
    Unfinished,
    bucket_counts,
    distinct,
    failing_names,
    in_one_snapshot,
    unfinished,
)
from celery_sa.reports.retries import NewestRetries, newest_retries
from celery_sa.reports.runtimes import BucketDurations, Runtimes, window_durations
from celery_sa.reports.window import Window


@dataclass
class WindowOverview:
    """Everything the overview page shows about a window."""

    window: Window
    buckets: list[BucketCounts]
    failing: list[NameFailures]
    unfinished: list[Unfinished]
    runtimes: Runtimes
    queue_waits: Runtimes
    retried: NewestRetries | None
    """Retries by name and exception; None without the attempt table."""
    queue_waits_over_time: list[BucketDurations] | None
    """Each bucket's queue waits; None without the sent and start times."""
    chords: WaitingChords | None = None
    """The chords celery_sa's backend counts that wait now; None without its chord table."""

    @property
    def by_status(self) -> dict[str | None, int]:
        totals: dict[str | None, int] = {}
        for counts in self.buckets:
            for status, rows in counts.by_status.items():
                totals[status] = totals.get(status, 0) + rows
        return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0] or "")))

    @property
    def total(self) -> int:
        return sum(counts.total for counts in self.buckets)

    @property
    def per_minute(self) -> float:
        return self.total / (self.window.seconds / 60) if self.window.seconds else 0.0

    @property
    def per_hour(self) -> float:
        return self.per_minute * 60

    @property
    def finished(self) -> int:
        """The results in a ready state (what the failure rate is a share of)."""
        return sum(self.by_status.get(state, 0) for state in states.READY_STATES)

    @property
    def failure_rate(self) -> float | None:
        failures = sum(counts.failures for counts in self.buckets)
        return failures / self.finished if self.finished else None


TOP_NAMES = 10


def collect_overview(window: Window) -> WindowOverview:
    """The overview of ``window``; raises DatabaseError when the table cannot be read."""
    with in_one_snapshot():
        durations = window_durations(window)
        return WindowOverview(
            window=window,
            buckets=bucket_counts(window, distinct("status")),
            failing=failing_names(window.since, window.until, limit=TOP_NAMES),
            unfinished=unfinished(),
            runtimes=durations.runtimes,
            queue_waits=durations.queue_waits,
            retried=newest_retries(window.since, window.until, limit=TOP_NAMES),
            queue_waits_over_time=durations.over_time,
            chords=waiting_chords(),
        )
