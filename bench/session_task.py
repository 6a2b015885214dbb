"""Benchmark: per-task cost of SessionTask against hand-written session boilerplate and
against the seed document's pattern, eagerly (apply()) and in a real worker.

    .venv/bin/python bench/session_task.py [--tasks 2000] [--rounds 5]

Every variant runs `SELECT 1` through a session on MariaDB (CELERY_SA_BENCH_MYSQL_URL,
default mysql://root@127.0.0.1:3306, database celery_sa_bench); the worker is `celery
worker -P solo` on Redis (CELERY_SA_BENCH_REDIS_URL, default redis://127.0.0.1:6379/0).
Rounds alternate the variants; the medians per task are printed with their ratio to the
boilerplate (the target is <= 1.05x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("boilerplate", "session_task", "seed_pattern")
LABELS = {
    "boilerplate": "boilerplate",
    "session_task": "SessionTask",
    "seed_pattern": "seed pattern",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="celery_sa_bench_"))
    mysql = os.environ.get("CELERY_SA_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        ENV_FILE=os.devnull,
        DEMO_DATA_DIR=str(data),
        DATABASE_URL=f"sqlite:///{data / 'django.sqlite3'}",
        CELERY_BROKER_URL=os.environ.get("CELERY_SA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        CELERY_RESULT_BACKEND=f"db+sqlite:///{data / 'results.sqlite3'}",
        CELERY_SA_DATABASE_URL=f"{mysql}/celery_sa_bench",
        CELERY_IMPORTS="bench.session_tasks",
        CELERY_TASK_DEFAULT_QUEUE=f"bench-{uuid.uuid4().hex[:8]}",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from sqlalchemy import create_engine, text

    server = create_engine(mysql, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text("CREATE DATABASE IF NOT EXISTS celery_sa_bench"))
    call_command("celery_sa_tables", "create", verbosity=0, stdout=open(os.devnull, "w"))
    try:
        report("eager (apply())", options.tasks, eager_rounds(options.tasks, options.rounds))
        report(
            "worker (-P solo)", options.tasks, worker_rounds(options.tasks, options.rounds, data)
        )
    finally:
        with server.connect() as connection:
            connection.execute(text("DROP DATABASE IF EXISTS celery_sa_bench"))


def eager_rounds(tasks: int, rounds: int) -> dict[str, list[float]]:
    from bench import session_tasks

    timings: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for _ in range(rounds):
        for variant in VARIANTS:
            task = getattr(session_tasks, variant)

            def run(task: Any = task) -> None:
                for _ in range(tasks):
                    task.apply()

            timings[variant].append(timed(run) / tasks)
    return timings


def worker_rounds(tasks: int, rounds: int, data: Path) -> dict[str, list[float]]:
    from project.celery import app
    from tests.support.workers import worker_argv, worker_process

    queue = os.environ["CELERY_TASK_DEFAULT_QUEUE"]
    argv = worker_argv(
        "project", queue=queue, node=f"{queue}@%h", pool="solo", concurrency=1, loglevel="WARNING"
    )
    timings: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    with worker_process(argv, dict(os.environ), subprocess.DEVNULL):
        app.send_task("bench.session_tasks.sentinel").get(timeout=60)  # the worker is up
        for _ in range(rounds):
            for variant in VARIANTS:
                name = f"bench.session_tasks.{variant}"

                def run(name: str = name) -> None:
                    for _ in range(tasks):
                        app.send_task(name)
                    app.send_task("bench.session_tasks.sentinel").get(timeout=600)

                timings[variant].append(timed(run) / tasks)
    return timings


def report(title: str, tasks: int, timings: dict[str, list[float]]) -> None:
    rounds = len(timings[VARIANTS[0]])
    medians = {variant: statistics.median(values) for variant, values in timings.items()}
    print(f"{title}: {tasks:,} tasks x {rounds} rounds, median per task")
    for variant in VARIANTS:
        runs = ", ".join(f"{value * 1e6:.0f}" for value in timings[variant])
        ratio = medians[variant] / medians["boilerplate"]
        print(
            f"  {LABELS[variant]:<13} {medians[variant] * 1e6:8.1f} us  {ratio:.3f}x"
            f"   (rounds: {runs} us)"
        )


def timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
