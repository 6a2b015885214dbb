"""The Celery app and tasks of bench/backend.py: its workers run ``-A bench.backend_tasks``.

No Django: the broker and the result backend come from BENCH_BROKER_URL and
BENCH_RESULT_BACKEND, and every ``celery.chord_unlock`` message the worker receives is
appended to the file BENCH_UNLOCK_LOG (when set), so the benchmark can count them.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery
from celery.signals import task_received

QUEUE = "bench_backend"
NOOP = "bench.noop"
STAMP = "bench.stamp"
CALLBACK = "bench.callback"
# The same pool for both database backends (celery_sa's and Celery's): Celery's defaults
# (pre-ping, recycle) with a pool of 2 and 2 more in overflow, per process and engine.
ENGINE_OPTIONS: dict[str, Any] = {
    "pool_size": 2,
    "max_overflow": 2,
    "pool_pre_ping": True,
    "pool_recycle": 3600,
}


def noop() -> None:
    """Nothing: what is measured is the worker storing the result."""


def stamp() -> float:
    """A chord header task: when it finished."""
    return time.time()


def callback(finished: list[float]) -> dict[str, float]:
    """A chord's callback: when it started, and when the last header task finished."""
    started = time.time()
    return {"started": started, "last_header": max(finished), "parts": len(finished)}


def make_app(broker: str, backend: str) -> Celery:
    """An app on ``broker`` storing results in ``backend``, with the benchmark's tasks."""
    app = Celery("bench_backend", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        result_extended=True,
        database_engine_options=dict(ENGINE_OPTIONS),
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
    )
    app.task(name=NOOP)(noop)
    app.task(name=STAMP)(stamp)
    app.task(name=CALLBACK)(callback)
    return app


@task_received.connect
def count_chord_unlock(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    """Append the id of each ``celery.chord_unlock`` message received to BENCH_UNLOCK_LOG."""
    path = os.environ.get("BENCH_UNLOCK_LOG")
    if path and request is not None and request.name == "celery.chord_unlock":
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{request.id}\n")


app = make_app(
    os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/8"),
    os.environ.get("BENCH_RESULT_BACKEND", "redis://127.0.0.1:6379/9"),
)
