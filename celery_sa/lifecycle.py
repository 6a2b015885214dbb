"""What a task's life records besides its result, without a write of its own: the time it
was sent, stamped on its message by the publisher, and the time its execution started,
noted by the worker; celery_sa's backend stores both with the task's result.

Nothing here imports Django: the worker and any publisher connect these handlers (the
Django app when it is ready, celery_sa's backend when a Celery app loads it).
"""

from __future__ import annotations

import math
import time
from datetime import datetime, tzinfo
from typing import Any

from celery.signals import before_task_publish, task_prerun

SENT_HEADER = "celery_sa_sent"
"""The message header with the time the task was first sent (seconds since the epoch)."""
STARTED = "celery_sa_started"
"""The request attribute with the time this execution started (an aware datetime)."""
# A sent time outside these years is not a time this publisher wrote: ignored.
PLAUSIBLE = (datetime(2000, 1, 1).timestamp(), datetime(9000, 1, 1).timestamp())


def stamp_sent(headers: Any = None, **kwargs: Any) -> None:
    """``before_task_publish``: the time of the first send (a retry's message keeps it)."""
    if isinstance(headers, dict):
        headers.setdefault(SENT_HEADER, time.time())


def note_start(task: Any = None, **kwargs: Any) -> None:
    """``task_prerun``: when this execution of the task started, in Celery's zone (the
    zone ``date_done`` is written in)."""
    request = getattr(task, "request", None)
    if request is not None:
        setattr(request, STARTED, task.app.now())


def sent_time(request: Any, zone: tzinfo) -> datetime | None:
    """The sent time ``request``'s message carries, in ``zone``; None when it has none or
    one that is not a plausible time."""
    value = getattr(request, SENT_HEADER, None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or not PLAUSIBLE[0] <= value <= PLAUSIBLE[1]:
        return None
    return datetime.fromtimestamp(value, zone)


def start_time(request: Any) -> datetime | None:
    """When ``request``'s execution started, if the worker noted it."""
    started = getattr(request, STARTED, None)
    return started if isinstance(started, datetime) else None


def connect() -> None:
    """Connect the handlers (once, whoever calls it)."""
    before_task_publish.connect(stamp_sent, weak=False, dispatch_uid="celery_sa.stamp_sent")
    task_prerun.connect(note_start, weak=False, dispatch_uid="celery_sa.note_start")
