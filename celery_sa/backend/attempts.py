"""The executions of a task that ended in a retry, kept in ``celery_sa_attempt``: when each
started and ended, and its exception. The execution that ends the task is the task's own
row; together they are the task's timeline."""

from __future__ import annotations

from typing import Any

from celery import states

from celery_sa import lifecycle

MESSAGE_LIMIT = 1000
"""The most characters of an exception's message kept."""
TRACEBACK_LIMIT = 16 * 1024
"""The most characters of a traceback kept: its end, where the exception is."""


def ended(
    app: Any, task_id: str, exc: Any, traceback: str | None, request: Any, state: str
) -> dict[str, Any] | None:
    """The row of the execution that ``request`` ran and that stored ``state``: only a
    retry's (the other states end the task, whose own row says how)."""
    if state != states.RETRY or request is None:
        return None
    number = getattr(request, "retries", 0)
    return {
        "task_id": task_id,
        "attempt": number if isinstance(number, int) and not isinstance(number, bool) else 0,
        "name": name[:155] if isinstance(name := getattr(request, "task", None), str) else None,
        "status": state,
        "date_started": lifecycle.start_time(request),
        "date_done": app.now(),
        "exception": type(exc).__name__[:155] if isinstance(exc, BaseException) else None,
        "message": str(exc)[:MESSAGE_LIMIT] if isinstance(exc, BaseException) else None,
        "traceback": traceback[-TRACEBACK_LIMIT:] if isinstance(traceback, str) else None,
    }
