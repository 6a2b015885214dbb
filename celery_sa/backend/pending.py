"""Sent-but-not-run tasks, opt in: with ``sa_track_sent`` (Django:
``CELERY_SA_TRACK_SENT = True``), publishing a task through an app whose result backend is
celery_sa's writes its row first, as PENDING, with its name, queue and sent time. A message
lost in the broker, or queued behind a dead worker, then shows as an unfinished task that
grows old, in the admin, the overview, the metrics and ``celery_sa_stats``.

The row is written only where the task has no row yet: a row never goes back to PENDING,
whichever comes first, the row or the task's result. By default it is written before the
message leaves, on the publisher's thread: an insert and a commit per publish. With
``sa_track_sent_delay`` (``CELERY_SA_TRACK_SENT_DELAY``) above 0, rows wait up to that many
seconds (or until 500 are waiting) and a thread of the publishing process writes them
together, in one transaction: publishing costs almost nothing, and a row may appear that
much after its message left (rows still waiting when the process is killed are lost; those
of a process that exits normally are written). ``bench/backend.py --lifecycle`` measures
both. When the database does not answer, the tasks are published all the same, without
their rows, and a warning says so: these writes are never retried, so a publisher never
waits for the database.
"""

from __future__ import annotations

import atexit
import logging
import os
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
    row = backend.sent_values(headers, routing_key)
    if backend.track_sent_delay > 0:
        _waiting.add(backend, row)
        return
    try:
        backend.store_sent([row])
    except SQLAlchemyError as exc:
        logger.warning(
            "Task %s[%s] was sent without its PENDING row: %s",
            headers.get("task"),
            task_id,
            type(exc).__name__,
        )


# Rows waiting for the writer thread: this many wake it before its delay is up.
BATCH = 500
# Times the thread tries to write a batch.
TRIES = 3


class WaitingRows:
    """The PENDING rows this process has yet to write, per result store, and the thread that
    writes them (started with the first row; in a forked child, anew)."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Start empty (and, in a forked child, leave the parent's rows to the parent)."""
        self._lock = threading.Lock()
        self._rows: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
        self._count = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, backend: Any, row: dict[str, Any]) -> None:
        with self._lock:
            _, rows = self._rows.setdefault(id(backend.store), (backend, []))
            rows.append(row)
            self._count += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_every,
                    args=(backend.track_sent_delay,),
                    name="celery_sa-pending-rows",
                    daemon=True,
                )
                self._thread.start()
            if self._count >= BATCH:
                self._wake.set()

    def _write_every(self, delay: float) -> None:
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            self.write()

    def write(self) -> None:
        """Write every waiting row now, a transaction per result store, in task id order
        (workers storing results lock rows of the same index): tried 3 times, for a
        deadlock with a worker's store ends one of them (MySQL, under load)."""
        with self._lock:
            waiting, self._rows, self._count = self._rows, {}, 0
        for backend, rows in waiting.values():
            rows.sort(key=lambda row: row["task_id"])
            for attempt in range(1, TRIES + 1):
                try:
                    backend.store_sent(rows)
                    break
                except SQLAlchemyError as exc:
                    if attempt == TRIES:
                        logger.warning(
                            "%d tasks were sent without their PENDING rows: %s",
                            len(rows),
                            type(exc).__name__,
                        )


_waiting = WaitingRows()
atexit.register(_waiting.write)
os.register_at_fork(after_in_child=_waiting.forget)


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
