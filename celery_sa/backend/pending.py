"""Sent-but-not-run tasks, opt in: with ``sa_track_sent`` (Django:
``CELERY_SA_TRACK_SENT = True``), publishing a task through an app whose result backend is
celery_sa's writes its row first, as PENDING, with its name, queue and sent time. A message
lost in the broker, or queued behind a dead worker, then shows as an unfinished task that
grows old, in the admin, the overview, the metrics and ``celery_sa_stats``.

The row is written before the message leaves (so no result can be stored before it), and
only where the task has no row yet: a row never goes back to PENDING. It costs one insert
and commit per publish, on the publisher's thread; the publish rate it leaves is measured
by ``bench/backend.py --lifecycle`` (its ``+track_sent`` variant). When the database does
not answer, the task is published all the same, without its row, and a warning says so:
this write is never retried, so a publisher never waits for the database.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from celery import states
from celery.signals import before_task_publish
from sqlalchemy.exc import SQLAlchemyError

from celery_sa import lifecycle

logger = logging.getLogger(__name__)

# The backend whose app is publishing a task now, and the task's id: Celery's send_task
# calls the backend's on_task_call just before it publishes (never for a task that ignores
# its result), and the publish signal does not say which app sends.
_publishing = threading.local()


def expect(backend: Any, task_id: str) -> None:
    """``backend``'s app is about to publish the task ``task_id`` (``on_task_call``)."""
    _publishing.next = (backend, task_id)


def record_sent(headers: Any = None, routing_key: str | None = None, **kwargs: Any) -> None:
    """``before_task_publish``: the task's PENDING row, when the backend of the app sending
    it is celery_sa's and tracks sends. A retry's message (its row exists) writes nothing."""
    backend, task_id = getattr(_publishing, "next", None) or (None, None)
    _publishing.next = None
    if backend is None or not isinstance(headers, dict) or headers.get("retries"):
        return
    if headers.get("id") != task_id:
        return
    lifecycle.stamp_sent(headers)
    try:
        backend.store_sent(headers, routing_key)
    except SQLAlchemyError as exc:
        logger.warning(
            "Task %s[%s] was sent without its PENDING row: %s",
            headers.get("task"),
            task_id,
            type(exc).__name__,
        )


def sent_row(headers: dict[str, Any], routing_key: str | None, now: datetime) -> dict[str, Any]:
    """The PENDING row of the message with ``headers``: ``date_done`` is when it was last
    updated (as for Celery's STARTED rows), so its age is the time it has waited."""
    return {
        "task_id": str(headers["id"]),
        "status": states.PENDING,
        "result": None,
        "date_done": now,
        "name": headers.get("task"),
        "queue": routing_key,
        "retries": 0,
    }


def connect() -> None:
    """Connect the handler (once, whoever calls it)."""
    before_task_publish.connect(record_sent, weak=False, dispatch_uid="celery_sa.record_sent")
