"""A task's timeline for its page: sent, each execution that ended in a retry (its start,
end and exception, from ``celery_sa_attempt``), the last execution (the task's own row);
drawn by the server, times in the viewer's zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError

from celery_sa.admin.display import format_runtime
from celery_sa.models import TaskAttempt, TaskResult

MAX_ATTEMPTS = 100
"""The most attempts listed (the first ones; a task retried more is rare and says so)."""


@dataclass(frozen=True)
class Step:
    """One line of the timeline."""

    kind: str
    """``sent``, ``attempt`` (ended in a retry) or ``last``."""
    number: int | None
    started: datetime | None
    done: datetime | None
    status: str | None
    exception: str = ""
    waited: str = ""
    """The time since the step before (the queue wait, the retry's delay)."""
    took: str = ""


@dataclass(frozen=True)
class Timeline:
    steps: list[Step]
    more: bool
    """Attempts past MAX_ATTEMPTS were left out."""
    unreadable: bool
    """The attempt table could not be read (missing: before `celery_sa_tables upgrade`)."""


def timeline(task: TaskResult) -> Timeline:
    """``task``'s timeline, from its row and its attempts."""
    attempts: list[TaskAttempt] = []
    unreadable = False
    try:
        found = TaskAttempt.objects.filter(task_id=task.task_id).order_by("attempt")
        attempts = list(found[: MAX_ATTEMPTS + 1])
    except DatabaseError:
        unreadable = True
    steps: list[Step] = []
    if task.sent is not None:
        steps.append(Step("sent", None, None, task.sent, None))
    previous = task.sent
    for attempt in attempts[:MAX_ATTEMPTS]:
        steps.append(
            Step(
                "attempt",
                attempt.attempt + 1,
                attempt.date_started,
                attempt.date_done,
                attempt.status,
                _exception(attempt),
                _between(previous, attempt.date_started),
                _between(attempt.date_started, attempt.date_done),
            )
        )
        previous = attempt.date_done
    last = (task.retries or 0) + 1 if isinstance(task.retries, int) else None
    steps.append(
        Step(
            "last",
            last,
            task.started,
            task.date_done,
            task.status,
            waited=_between(previous, task.started),
            took=_between(task.started, task.date_done),
        )
    )
    return Timeline(steps, more=len(attempts) > MAX_ATTEMPTS, unreadable=unreadable)


def _exception(attempt: TaskAttempt) -> str:
    if not attempt.exception:
        return ""
    return f"{attempt.exception}: {attempt.message}" if attempt.message else attempt.exception


def _between(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return format_runtime(max(0.0, (end - start).total_seconds()))
