"""What the result table says about the last hours: counts by status and task name, failure
rates, each task's newest failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery import states
from django.db.models import Count, QuerySet
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
    failures: int = 0
    newest_failure: Failure | None = None

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
    """Counts of the task results done in ``[since, until]``, each from an index alone: per
    status on ``(status, date_done)``, per name on ``(name, date_done)``; failures per
    name over the FAILURE range; one indexed lookup per task name that failed."""
    stats = Stats(since=since, until=until)
    window = TaskResult.objects.filter(date_done__gte=since, date_done__lte=until)
    stats.by_status = {
        status or "(none)": rows for status, rows in counts_per_value(window, "status").items()
    }
    stats.total = sum(stats.by_status.values())
    failed = dict(
        window.filter(status=states.FAILURE)
        .order_by()
        .values_list("name")
        .annotate(rows=Count("id"))
        .values_list("name", "rows")
    )
    for name, rows in counts_per_value(window, "name").items():
        entry = NameStats(name, total=rows, failures=failed.get(name, 0))
        if entry.failures:
            entry.newest_failure = newest_failure(window, name)
        stats.by_name.append(entry)
    stats.by_name.sort(key=lambda entry: (-entry.total, entry.name or ""))
    return stats


def counts_per_value(window: QuerySet[TaskResult], column: str) -> dict[Any, int]:
    """``window``'s rows per value of ``column``, most first: the column's distinct values
    (a skip along its index on MySQL/MariaDB), then a count of each one's date range."""
    values = TaskResult.objects.order_by().values_list(column, flat=True).distinct()
    counts = {}
    for value in values:
        rows = window.filter(**({f"{column}__isnull": True} if value is None else {column: value}))
        found = rows.count()
        if found:
            counts[value] = found
    return dict(sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))))


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
