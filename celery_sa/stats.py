"""What the result table says about the last hours: counts by status and task name, failure
rates, each task's newest failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery import states
from django.db.models import Count
from django.db.models.functions import Right

from celery_sa.models import TaskResult

# The traceback's last characters hold the exception line; the rest is not needed here.
TRACEBACK_TAIL = 500


@dataclass(frozen=True)
class Failure:
    """The newest failure of a task name in the window."""

    task_id: str
    date_done: datetime
    exception: str


@dataclass
class NameStats:
    """One task name's results in the window."""

    name: str | None
    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    newest_failure: Failure | None = None

    @property
    def failures(self) -> int:
        return self.by_status.get(states.FAILURE, 0)

    @property
    def failure_rate(self) -> float:
        """Failures as a share of this name's results in the window."""
        return self.failures / self.total if self.total else 0.0


@dataclass
class Stats:
    """Task results done in ``[since, until]``."""

    since: datetime
    until: datetime
    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_name: list[NameStats] = field(default_factory=list)

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
                    "by_status": name.by_status,
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
        }


def collect(since: datetime, until: datetime) -> Stats:
    """Counts of the task results done in ``[since, until]``: one grouped query over the
    date_done index range, then one indexed lookup per task name that failed."""
    stats = Stats(since=since, until=until)
    window = TaskResult.objects.filter(date_done__gte=since, date_done__lte=until)
    names: dict[str | None, NameStats] = {}
    groups = window.order_by().values_list("name", "status").annotate(rows=Count("id"))
    for name, status, rows in groups:
        status = status or "(none)"
        entry = names.setdefault(name, NameStats(name))
        entry.total += rows
        entry.by_status[status] = entry.by_status.get(status, 0) + rows
        stats.by_status[status] = stats.by_status.get(status, 0) + rows
        stats.total += rows
    for entry in names.values():
        if entry.failures:
            entry.newest_failure = newest_failure(window, entry.name)
    stats.by_status = most_first(stats.by_status)
    stats.by_name = sorted(names.values(), key=lambda entry: (-entry.total, entry.name or ""))
    for entry in stats.by_name:
        entry.by_status = most_first(entry.by_status)
    return stats


def most_first(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def newest_failure(window: Any, name: str | None) -> Failure | None:
    failures = window.filter(status=states.FAILURE)
    failures = failures.filter(name__isnull=True) if name is None else failures.filter(name=name)
    row = (
        failures.order_by("-date_done", "-id")
        .annotate(tail=Right("traceback", TRACEBACK_TAIL))
        .values_list("task_id", "date_done", "tail")
        .first()
    )
    if row is None:
        return None
    task_id, date_done, tail = row
    lines = [line.strip() for line in (tail or "").splitlines() if line.strip()]
    return Failure(task_id or "", date_done, lines[-1] if lines else "")
