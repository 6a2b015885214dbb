"""The Celery app and tasks of bench/backend.py: its workers run ``-A bench.backend_tasks``.

No Django: the broker and the result backend come from BENCH_BROKER_URL and
BENCH_RESULT_BACKEND, and every ``celery.chord_unlock`` message the worker receives is
appended to the file BENCH_UNLOCK_LOG (when set), so the benchmark can count them.

For ``bench/backend.py --lifecycle``: BENCH_TRACK_SENT=<delay> sets ``sa_track_sent`` and
``sa_track_sent_delay``;
BENCH_CELERY_SA_TREE (a checkout of another commit) is where celery_sa, and only it, is
imported from once this module is imported (in every process that imports it before
celery_sa), so the backend is that tree's; and when the worker is ready it appends the file
its backend class comes from to BENCH_ORIGIN_LOG (when set), so the benchmark can check
which code stored the results.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import time
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

from celery import Celery
from celery.signals import task_received, worker_ready

QUEUE = "bench_backend"
NOOP = "bench.noop"
STAMP = "bench.stamp"
CALLBACK = "bench.callback"
TREE = "BENCH_CELERY_SA_TREE"
TRACK_SENT = "BENCH_TRACK_SENT"
# The same pool for both database backends (celery_sa's and Celery's): Celery's defaults
# (pre-ping, recycle) with a pool of 2 and 2 more in overflow, per process and engine.
ENGINE_OPTIONS: dict[str, Any] = {
    "pool_size": 2,
    "max_overflow": 2,
    "pool_pre_ping": True,
    "pool_recycle": 3600,
}


class PackageFinder(MetaPathFinder):
    """Finds the package ``name`` in ``directory``, before ``sys.path`` is searched; its
    submodules follow the package's ``__path__``. Only that package: with the whole tree
    first on ``sys.path``, its own ``bench/`` and ``tests/`` would shadow the checkout's."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name, self.directory = name, directory

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        init = self.directory / "__init__.py"
        return importlib.util.spec_from_file_location(
            fullname, init, submodule_search_locations=[str(self.directory)]
        )


def use_tree(tree: str | None) -> None:
    """Import celery_sa from ``tree`` rather than from the checkout."""
    if not tree:
        return
    loaded = sys.modules.get("celery_sa")
    if loaded is not None and not is_under(loaded.__file__, tree):
        raise RuntimeError(f"celery_sa was imported from {loaded.__file__} before {TREE}")
    sys.meta_path.insert(0, PackageFinder("celery_sa", Path(tree) / "celery_sa"))


def is_under(path: str | None, tree: str) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(Path(tree).resolve())


use_tree(os.environ.get(TREE))


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
        sa_track_sent=TRACK_SENT in os.environ,
        sa_track_sent_delay=float(os.environ.get(TRACK_SENT) or 0),
    )
    app.task(name=NOOP)(noop)
    app.task(name=STAMP)(stamp)
    app.task(name=CALLBACK)(callback)
    return app


def backend_origin(app: Celery) -> str:
    """The file ``app``'s result backend class is defined in."""
    return inspect.getfile(type(app.backend))


def count_chord_unlock(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    """Append the id of each ``celery.chord_unlock`` message received to BENCH_UNLOCK_LOG."""
    path = os.environ.get("BENCH_UNLOCK_LOG")
    if path and request is not None and request.name == "celery.chord_unlock":
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{request.id}\n")


def log_origin(sender: Any = None, **kwargs: Any) -> None:
    """Append the file the worker's backend class comes from to BENCH_ORIGIN_LOG."""
    path = os.environ.get("BENCH_ORIGIN_LOG")
    if path and sender is not None:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{backend_origin(sender.app)}\n")


# Connected by call: Celery's decorator is untyped.
task_received.connect(count_chord_unlock)
worker_ready.connect(log_origin)
app = make_app(
    os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/8"),
    os.environ.get("BENCH_RESULT_BACKEND", "redis://127.0.0.1:6379/9"),
)
