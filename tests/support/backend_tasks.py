"""Tasks the result backend tests run (imported by the demo project's worker through
CELERY_IMPORTS, and by tests/support/plain_celery_app.py). Nothing here imports Django.

With $CELERY_SA_TEST_RUNS_FILE set, every task execution that starts adds a line
"task_id task_name" to it: how the tests count callbacks and ``celery.chord_unlock`` runs.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from celery import shared_task
from celery.signals import task_prerun


@shared_task
def add(x: int, y: int) -> int:
    return x + y


@shared_task
def fail(message: str) -> None:
    raise ValueError(message)


@shared_task
def collect(values: list[Any]) -> list[Any]:
    """A chord callback that returns what it was given."""
    return values


@shared_task
def total(values: list[Any]) -> int:
    """A chord callback: the sum of its (possibly nested) values."""
    return sum(total(v) if isinstance(v, list) else v for v in values)


@shared_task
def nap(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


@shared_task
def killed_once(value: Any, marker_dir: str) -> Any:
    """The first run of ``value`` writes its pid to marker_dir/value and waits to be
    killed; the run after redelivery returns ``value``."""
    marker = os.path.join(marker_dir, str(value))
    if not os.path.exists(marker):
        with open(marker + ".tmp", "w") as file:
            file.write(str(os.getpid()))
        os.rename(marker + ".tmp", marker)
        time.sleep(60)
    return value


@shared_task
def held(value: Any, release: str) -> Any:
    """Returns ``value`` once the file ``release`` exists (the test decides when), or
    raises after a minute."""
    deadline = time.monotonic() + 60
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} never appeared")
        time.sleep(0.05)
    return value


@shared_task
def errback_noted(task_id: str) -> str:
    """An error callback in Celery's old style (called with the failed task's id)."""
    return task_id


@shared_task
def settings_configured() -> bool:
    """Whether Django settings were configured in this worker process."""
    import django.conf

    return bool(django.conf.settings.configured)


_runs_lock = threading.Lock()


@task_prerun.connect
def _note_run(task_id: str, task: Any, **kwargs: Any) -> None:
    path = os.environ.get("CELERY_SA_TEST_RUNS_FILE")
    if path:
        with _runs_lock, open(path, "a") as file:
            file.write(f"{task_id} {task.name} {os.getpid()}\n")


_LOCK_HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
open(sys.argv[2], "w").close()
time.sleep(float(sys.argv[3]))
"""


@shared_task
def lock_results_once(value: Any, marker_dir: str, database: str, seconds: float) -> Any:
    """The first run of ``value`` locks the SQLite result ``database`` for ``seconds`` from
    another process (the outage its result must ride out) and returns; later runs return
    at once."""
    import subprocess
    import sys

    marker = os.path.join(marker_dir, f"lock-{value}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        locked = marker + ".locked"
        subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, database, locked, str(seconds)])
        while not os.path.exists(locked):
            time.sleep(0.01)
    return value


@shared_task(bind=True, max_retries=5)
def flaky(self: Any, failures: int) -> int:
    """Fails ``failures`` times with ConnectionError (retried 0.2 s later), then returns
    how many retries it took."""
    if self.request.retries < failures:
        raise self.retry(countdown=0.2, exc=ConnectionError(f"attempt {self.request.retries}"))
    return int(self.request.retries)
