"""Benchmark: celery_sa_purge against Celery's own cleanup(), 1,000,000 rows, a live writer.

    .venv/bin/python bench/purge_1m.py [--rows 1000000] [--runs 3] [--batch-size 5000] [--jobs 2]

Each run fills celery_taskmeta (the table `celery_sa_tables create` makes, indexes included)
with the same rows twice, once for each contender, in its own MariaDB database
(CELERY_SA_BENCH_MYSQL_URL, default mysql://root@127.0.0.1:3306; database
celery_sa_bench_purge, dropped at the end). Row n is done rows - n seconds ago (ids grow
with time, as Celery's do);
both delete those older than 233,000 s (767,000 of 1,000,000).

While each deletes, a writer process stores a result every 20 ms through Celery's own
DatabaseBackend.store_result: every other write is a new task, the others store again a task
id inside the range being deleted (an UPDATE of a row that may be under deletion, or an
INSERT when it is already gone). Printed per contender: time, rows deleted, the largest
transaction's rows and the longest one's seconds, and the writer's latency (median, p99,
max) over the writes that started while it ran; medians over the runs, and celery_sa's time
as a multiple of Celery's.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import scratch_database  # noqa: E402

DATABASE = "celery_sa_bench_purge"
# Rows are done one a second apart up to now: those older than this share of the row count
# are deleted (233,000 s and about 767,000 rows of 1,000,000).
KEPT_SHARE = 0.233
WRITE_EVERY = 0.020


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=None)
    options = parser.parse_args()
    with scratch_database(DATABASE):
        run(options.rows, options.runs, options.batch_size, options.jobs)


def run(rows: int, runs: int, batch_size: int | None, jobs: int | None) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from celery_sa.housekeeping.purge import DEFAULT_BATCH_SIZE, DEFAULT_JOBS

    call_command("celery_sa_tables", "create", stdout=open(os.devnull, "w"))
    age = round(rows * KEPT_SHARE)
    results: dict[str, list[dict[str, float]]] = {"Celery cleanup()": [], "celery_sa_purge": []}
    for number in range(1, runs + 1):
        for contender, delete in (
            ("Celery cleanup()", lambda: celery_cleanup(age)),
            (
                "celery_sa_purge",
                lambda: celery_sa_purge(
                    age, batch_size or DEFAULT_BATCH_SIZE, jobs or DEFAULT_JOBS
                ),
            ),
        ):
            fill(rows)
            figures = with_writer(delete, age, rows)
            results[contender].append(figures)
            print(f"run {number} {contender:<17} {describe(figures)}", flush=True)
    print(f"median of {runs} runs, {rows:,} rows, writer storing a result every 20 ms:")
    medians = {
        contender: {key: statistics.median(r[key] for r in runs_) for key in runs_[0]}
        for contender, runs_ in results.items()
    }
    for contender, figures in medians.items():
        print(f"  {contender:<17} {describe(figures)}")
    ratio = medians["celery_sa_purge"]["seconds"] / medians["Celery cleanup()"]["seconds"]
    p99 = medians["Celery cleanup()"]["p99"] / medians["celery_sa_purge"]["p99"]
    print(f"  celery_sa_purge takes {ratio:.2f}x Celery's time; writer p99 {p99:.0f}x lower")


def describe(figures: dict[str, float]) -> str:
    return (
        f"{figures['seconds']:6.2f} s  {figures['deleted']:>9,.0f} rows  largest transaction "
        f"{figures['largest']:>9,.0f} rows, longest {figures['longest']:5.2f} s  writer p50 "
        f"{figures['p50']:6.1f} ms  p99 {figures['p99']:7.1f} ms  max {figures['max']:7.1f} ms  "
        f"({figures['writes']:.0f} writes)"
    )


def fill(rows: int, status: str = "'SUCCESS'") -> None:
    """Row n: task id bench-n, done rows - n seconds ago, one of 50 names, ``status`` (SQL
    over ``seq``); Celery's sequence goes on after them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE TABLE celery_taskmeta")
        cursor.execute(
            "INSERT INTO celery_taskmeta (id, task_id, status, result, date_done, name, args,"
            f" kwargs, worker, retries, queue, traceback) SELECT seq, CONCAT('bench-', seq),"
            f" {status}, '42', NOW() - INTERVAL (%s - seq) SECOND,"
            " CONCAT('app.tasks.t', MOD(seq, 50)), '[]', '{}', 'celery@w', 0, 'celery',"
            " 'Traceback (most recent call last):\nValueError: bench' FROM seq_1_to_%s",
            [rows, rows],
        )
        cursor.execute(f"ALTER SEQUENCE task_id_sequence RESTART WITH {rows + 1}")
        cursor.execute("ANALYZE TABLE celery_taskmeta")
        cursor.fetchall()


def celery_cleanup(age: int) -> dict[str, float]:
    from celery import Celery

    app = Celery(backend="db+" + os.environ["CELERY_SA_BENCH_DATABASE_URL"], set_as_current=False)
    app.conf.result_expires = age
    backend = app.backend
    before = count_rows()
    started = time.time()
    backend.cleanup()  # one DELETE, one transaction
    ended = time.time()
    deleted = before - count_rows()
    return {
        "deleted": deleted,
        "largest": deleted,
        "longest": ended - started,
        "started": started,
        "ended": ended,
    }


def celery_sa_purge(age: int, batch_size: int, jobs: int) -> dict[str, float]:
    from datetime import timedelta

    from celery_sa.housekeeping.purge import PurgeOptions, purge

    options = PurgeOptions(timedelta(seconds=age), groups=False, batch_size=batch_size, jobs=jobs)
    batches: list[int] = []
    times = [time.time()]

    def on_batch(rows: int) -> None:
        batches.append(rows)
        times.append(time.time())

    result = purge(options, on_batch=on_batch)
    return {
        "deleted": result.tasks,
        "largest": max(batches, default=0),
        # A batch's time, its transaction's included: an upper bound of how long it held locks.
        "longest": max(b - a for a, b in itertools.pairwise(times)),
        "started": times[0],
        "ended": time.time(),
    }


def count_rows() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM celery_taskmeta")
        return int(cursor.fetchone()[0])


def with_writer(delete: Any, age: int, rows: int) -> dict[str, float]:
    """Run ``delete`` while a writer process stores results: its figures, the time between
    the ``started`` and ``ended`` it reports (the deletion only, no counting) and the
    writer's latencies over the writes that started in between."""
    context = multiprocessing.get_context("spawn")
    stop, ready = context.Event(), context.Event()
    queue: Any = context.Queue()
    writer = context.Process(target=write, args=(stop, ready, queue, age, rows), daemon=True)
    writer.start()
    ready.wait(60)
    time.sleep(0.5)  # steady state before the delete starts
    figures = delete()
    started, ended = figures.pop("started"), figures.pop("ended")
    time.sleep(0.2)
    stop.set()
    samples: list[tuple[float, float]] = queue.get(timeout=60)
    writer.join(30)
    during = [latency for at, latency in samples if started <= at <= ended] or [0.0]
    during.sort()
    return {
        **figures,
        "seconds": ended - started,
        "p50": statistics.median(during),
        "p99": during[min(len(during) - 1, int(len(during) * 0.99))],
        "max": during[-1],
        "writes": len(during),
    }


def write(stop: Any, ready: Any, queue: Any, age: int, rows: int) -> None:
    """Store a result every 20 ms with Celery's DatabaseBackend; report (start, ms) pairs."""
    from celery import Celery, states

    app = Celery(backend="db+" + os.environ["CELERY_SA_BENCH_DATABASE_URL"], set_as_current=False)
    backend = app.backend
    backend.store_result("warm-up", 1, states.SUCCESS)
    ready.set()
    samples = []
    number = 0
    next_at = time.monotonic()
    while not stop.is_set():
        number += 1
        if number % 2:
            task_id = f"new-{os.getpid()}-{number}"
        else:  # a task id inside the range being deleted
            task_id = f"bench-{random.randint(1, rows - age - 100)}"
        at = time.time()
        began = time.perf_counter()
        try:
            backend.store_result(task_id, number, states.SUCCESS)
        except Exception as exc:  # e.g. the row deleted between Celery's SELECT and UPDATE
            print(f"writer: {task_id}: {type(exc).__name__}: {exc}", file=sys.stderr)
        samples.append((at, (time.perf_counter() - began) * 1000))
        next_at += WRITE_EVERY
        time.sleep(max(0.0, next_at - time.monotonic()))
    queue.put(samples)


if __name__ == "__main__":
    main()
