"""Benchmark: a fleet of prefork workers storing results straight to PostgreSQL against
through a PgBouncer in transaction pooling, with celery_sa's backend and Celery's.

    .venv/bin/python bench/pgbouncer.py [--workers 4] [--concurrency 8] [--tasks 4000]
        [--rounds 3] [--quick] [--backend celery_sa|celery]

A fleet of W real ``celery worker -A bench.backend_tasks -P prefork -c C`` subprocesses (the
tasks and app of bench/backend.py, the same engine options: a pool of 2 and 2 in overflow per
process) consumes its queue on a Redis broker (db 10) and stores its results on PostgreSQL
database celery_sa_bench_pgbouncer, created afresh for each run and dropped at the end. Two
result backends, ``celery_sa+postgresql+psycopg://`` and Celery's own
``db+postgresql+psycopg://``, each by two routes: straight to PostgreSQL, and through a
PgBouncer of the run's own (tests/support/pgbouncer.py: ``pool_mode = transaction``,
``default_pool_size = 8``), which the client goes through too. Each round takes both
backends, each by both routes, the routes' order alternating from round to round.

Per run: the client builds its backend first (so the tables exist before the workers start),
the fleet is started, pinged and warmed up (10 no-op tasks per pool process), then N no-op
tasks are queued while the workers' consumers are cancelled; the clock starts when they are
added back and stops when the database holds N SUCCESS rows of them (a count every 50 ms), or
at the last new row once none has come for 30 s (then the run's results are incomplete).
Reported: tasks/s, the results stored, the highest number of connections PostgreSQL had to
the benchmark's database during the fleet's life (``pg_stat_activity`` every 0.1 s, the
benchmark's own observing connections left out, the client's counted), the sessions it
accepted to the database during the timed part (``pg_stat_database.sessions``, which each
backend reports lazily: a few may be counted late; PgBouncer's are its server connections), and
the lines of the workers' logs (WARNING and above) that show an error or a retry. Then the medians,
PgBouncer / direct for each backend, and the issue's targets: through PgBouncer at least
0.85x direct's tasks/s, at most 8 connections on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.backend import (  # noqa: E402
    REDIS,
    TIMESTAMP,
    Worker,
    check,
    dispose_client_engines,
    enqueue,
    new_batch,
    python_path,
    redis_db,
    sampled,
    times,
    wait_ready,
)
from bench.backend_tasks import NOOP, QUEUE, make_app  # noqa: E402
from tests.support.pgbouncer import PROGRAM, private_pgbouncer  # noqa: E402
from tests.support.workers import worker_argv, worker_process  # noqa: E402

DATABASE = "celery_sa_bench_pgbouncer"
SERVER = "host=127.0.0.1 port=5432 user=postgres"
UPSTREAM = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
BROKER_DB = 10
BROKER_URL = f"{REDIS}/{BROKER_DB}"
BACKENDS = {"celery_sa": "celery_sa+", "Celery db+": "db+"}
CHOICES = {"celery_sa": "celery_sa", "celery": "Celery db+"}
DIRECT, BOUNCER = "direct", "PgBouncer"
POOL_SIZE = 8
OBSERVER = "celery_sa-bench-observer"
"""The application_name of the benchmark's own connections, which the count leaves out."""
WARMUP_PER_SLOT = 10
POLL, SAMPLE, STALL, TIMEOUT = 0.05, 0.1, 30.0, 900.0
LOGGED = re.compile(r"Retrying|prepared statement|ERROR|Traceback")
RATIO_TARGET = 0.85


@dataclass(frozen=True)
class Sizes:
    workers: int
    concurrency: int
    tasks: int
    rounds: int


@dataclass(frozen=True)
class Run:
    backend: str
    route: str
    per_second: float
    stored: int
    tasks: int
    peak: int
    opened: int
    """Sessions PostgreSQL accepted to the database during the timed part."""
    logged: list[str]
    wall: float


# -- PostgreSQL ---------------------------------------------------------------------------


def connect(database: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        f"{SERVER} dbname={database} application_name={OBSERVER}", autocommit=True
    )


def fresh_database() -> None:
    with connect("postgres") as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {DATABASE}")


def drop_database() -> None:
    with connect("postgres") as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def stored(connection: psycopg.Connection[Any], prefix: str) -> int:
    """The SUCCESS rows of a batch (its task ids share a prefix)."""
    row = connection.execute(
        "SELECT count(*) FROM celery_taskmeta WHERE task_id LIKE %s AND status = 'SUCCESS'",
        (f"{prefix}-%",),
    ).fetchone()
    return int(row[0]) if row else 0


def sessions(connection: psycopg.Connection[Any]) -> int:
    """The sessions PostgreSQL has accepted to the connection's database (each backend
    reports its own when it ends or, open, within seconds: a few may come late)."""
    row = connection.execute(
        "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def sampling() -> Iterator[list[int]]:
    """The connections PostgreSQL has to the benchmark's database (the observer's left out),
    counted every 0.1 s in a thread while the block runs, into the list yielded."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name <> %s"
    with connect("postgres") as connection:

        def count() -> int:
            row = connection.execute(query, (DATABASE, OBSERVER)).fetchone()
            return int(row[0]) if row else 0

        with sampled(count, SAMPLE) as counts:
            yield counts


@contextmanager
def routed(route: str, directory: Path) -> Iterator[str]:
    """The SQLAlchemy URL of the benchmark's database by ``route``: the server's, or that of
    a PgBouncer started for the block."""
    if route == DIRECT:
        yield UPSTREAM
        return
    with private_pgbouncer(directory, UPSTREAM, POOL_SIZE) as bouncer:
        yield bouncer.url


# -- the fleet ----------------------------------------------------------------------------


@contextmanager
def fleet(app: Any, url: str, sizes: Sizes, logs: Path, tag: str) -> Iterator[list[Worker]]:
    """W prefork workers on the backend ``url``, each answering pings; all told to stop at
    once afterwards (then each waited for, its process group killed if need be)."""
    env = dict(
        os.environ,
        PYTHONPATH=python_path(),
        BENCH_BROKER_URL=BROKER_URL,
        BENCH_RESULT_BACKEND=url,
        PYTHONWARNINGS="ignore:You're running the worker with superuser privileges",
    )
    with ExitStack() as stack:
        workers: list[Worker] = []
        for number in range(sizes.workers):
            node = f"bench-pgbouncer{number}-{uuid.uuid4().hex[:6]}@localhost"
            log = logs / f"{tag}-w{number}.log"
            argv = worker_argv(
                "bench.backend_tasks",
                queue=QUEUE,
                node=node,
                pool="prefork",
                concurrency=sizes.concurrency,
                loglevel="WARNING",
                quiet=True,
            )
            output = stack.enter_context(open(log, "w"))
            process = stack.enter_context(worker_process(argv, env, output, stop_timeout=30))
            workers.append(Worker(node, process, log))
        stack.callback(terminate, workers)
        for worker in workers:
            wait_ready(app, worker)
        yield workers


def terminate(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.terminate()


def broadcast(app: Any, workers: list[Worker], command: str) -> None:
    """``cancel_consumer`` or ``add_consumer`` of the queue on every worker, confirmed."""
    nodes = [worker.node for worker in workers]
    replies = getattr(app.control, command)(QUEUE, destination=nodes, reply=True, timeout=10)
    if len(replies) < len(nodes):
        raise RuntimeError(f"{command}: {len(replies)} of {len(nodes)} workers replied")


def wait_stored(
    connection: psycopg.Connection[Any], prefix: str, size: int, started: float
) -> tuple[int, float]:
    """The batch's results stored and the seconds from ``started`` (``perf_counter()``) until
    the last of them: when all are stored, or when none has come for STALL seconds."""
    last, progressed = 0, started
    while True:
        count = stored(connection, prefix)
        now = time.perf_counter()
        if count > last:
            last, progressed = count, now
        if count >= size or now - progressed > STALL or now - started > TIMEOUT:
            return last, progressed - started
        time.sleep(POLL)


def timed(
    app: Any, workers: list[Worker], connection: psycopg.Connection[Any], size: int
) -> tuple[int, float, int]:
    """Results stored, seconds and sessions opened: ``size`` tasks queued beforehand, then
    the fleet on."""
    batch = new_batch(size)
    broadcast(app, workers, "cancel_consumer")
    enqueue(app, NOOP, batch)
    before = sessions(connection)
    started = time.perf_counter()
    broadcast(app, workers, "add_consumer")
    done, seconds = wait_stored(connection, batch.prefix, size, started)
    return done, seconds, sessions(connection) - before


# -- a run --------------------------------------------------------------------------------


def run_once(backend: str, route: str, sizes: Sizes, logs: Path, tag: str) -> Run:
    """One backend by one route, from a fresh database and an empty broker."""
    started = time.monotonic()
    fresh_database()
    redis_db(BROKER_DB).flushdb()
    with (
        routed(route, logs / f"{tag}-pgbouncer") as url,
        sampling() as counts,
        connect(DATABASE) as connection,
    ):
        app = make_app(BROKER_URL, BACKENDS[backend] + url)
        try:
            # The tables are the client's to create, not 32 processes' at once.
            _ = app.AsyncResult(f"{tag}-none").state
            with fleet(app, app.conf.result_backend, sizes, logs, tag) as workers:
                warm_up = new_batch(WARMUP_PER_SLOT * sizes.workers * sizes.concurrency)
                enqueue(app, NOOP, warm_up)
                warmed, _seconds = wait_stored(
                    connection, warm_up.prefix, len(warm_up.ids), time.perf_counter()
                )
                done, seconds, opened = timed(app, workers, connection, sizes.tasks)
        finally:
            app.close()
            dispose_client_engines()
    if warmed < len(warm_up.ids):
        print(f"  ({tag}: {warmed} of {len(warm_up.ids)} warm-up results stored)", flush=True)
    run = Run(
        backend,
        route,
        done / seconds if seconds > 0 else 0.0,
        done,
        sizes.tasks,
        max(counts, default=0),
        opened,
        logged_lines(logs, tag),
        time.monotonic() - started,
    )
    print(describe(run), flush=True)
    return run


def logged_lines(logs: Path, tag: str) -> list[str]:
    """The run's workers' log lines that show an error or a retry, without timestamps."""
    return [
        TIMESTAMP.sub("[", line.rstrip())
        for log in sorted(logs.glob(f"{tag}-w*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if LOGGED.search(line)
    ]


def describe(run: Run) -> str:
    missing = "" if run.stored == run.tasks else "  MISSING RESULTS"
    return (
        f"  {run.backend:<10} {run.route:<9} {run.per_second:6.0f} tasks/s,"
        f" {run.stored}/{run.tasks} stored, peak {run.peak:3} connections on PostgreSQL,"
        f" {run.opened:5} sessions opened, {len(run.logged)} error/retry log lines,"
        f" run {run.wall:.0f} s{missing}"
    )


# -- the report ---------------------------------------------------------------------------


def median(runs: list[Run], attribute: str) -> float | None:
    values = [getattr(run, attribute) for run in runs]
    return statistics.median(values) if values else None


def report(runs: list[Run], backends: list[str]) -> None:
    print("\n== every run and the median ==")
    for backend in backends:
        for route in (DIRECT, BOUNCER):
            mine = [run for run in runs if (run.backend, run.route) == (backend, route)]
            if not mine:
                continue
            rates = ", ".join(f"{run.per_second:.0f}" for run in mine)
            peaks = ", ".join(str(run.peak) for run in mine)
            opened = ", ".join(str(run.opened) for run in mine)
            stored = sum(run.stored == run.tasks for run in mine)
            print(
                f"  {backend:<10} {route:<9} median {median(mine, 'per_second'):6.0f} tasks/s"
                f" (runs: {rates}); peak connections {peaks}; sessions opened {opened};"
                f" every result stored in {stored}/{len(mine)} runs;"
                f" error/retry lines {sum(len(run.logged) for run in mine)}"
            )
    print("\n== PgBouncer / direct (medians) and the issue's targets ==")
    for backend in backends:
        report_targets(backend, [run for run in runs if run.backend == backend])


def report_targets(backend: str, runs: list[Run]) -> None:
    direct = [run for run in runs if run.route == DIRECT]
    bounced = [run for run in runs if run.route == BOUNCER]
    top, bottom = median(bounced, "per_second"), median(direct, "per_second")
    value = top / bottom if top is not None and bottom else None
    text = f"{backend}: PgBouncer >= {RATIO_TARGET}x direct's tasks/s"
    check(text, value, times(value), lambda v: v >= RATIO_TARGET)
    peak = max((run.peak for run in bounced), default=None)
    direct_peak = max((run.peak for run in direct), default=None)
    text = f"{backend}: <= {POOL_SIZE} connections on PostgreSQL, PgBouncer"
    shown = f"max {peak} (direct: max {direct_peak})"
    check(text, peak, shown, lambda v: v <= POOL_SIZE)
    for route, mine in ((DIRECT, direct), (BOUNCER, bounced)):
        incomplete = sum(run.stored < run.tasks for run in mine) if mine else None
        shown = f"{len(mine) - (incomplete or 0)}/{len(mine)} runs"
        check(f"{backend}: every result stored, {route}", incomplete, shown, lambda v: v == 0)
        lines = sum(len(run.logged) for run in mine) if mine else None
        text = f"{backend}: no error/retry line in the logs, {route}"
        check(text, lines, f"{lines} lines", lambda v: v == 0)


def report_logs(runs: list[Run], logs: Path) -> None:
    """The error and retry lines, each distinct line once, counted."""
    print("\n== error/retry lines of the workers' logs (timestamps dropped, counted) ==")
    seen = Counter((run.backend, run.route, line[:150]) for run in runs for line in run.logged)
    for (backend, route, line), count in seen.most_common(20):
        print(f"  {count:5}x {backend} {route}: {line}")
    more = len(seen) - 20
    print(f"  {f'{more} more distinct lines; ' if more > 0 else ''}the logs are in {logs}")


# -- main ---------------------------------------------------------------------------------


def parse() -> tuple[Sizes, list[str]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 workers x 2, 400 tasks, 1 round")
    parser.add_argument("--workers", "-w", type=int, help="celery workers, default 4 (2)")
    parser.add_argument("--concurrency", "-c", type=int, help="prefork processes, default 8 (2)")
    parser.add_argument("--tasks", "-n", type=int, help="tasks per run, default 4000 (400)")
    parser.add_argument("--rounds", type=int, help="default 3 (1)")
    parser.add_argument(
        "--backend", action="append", choices=CHOICES, help="one backend only (repeatable)"
    )
    options = parser.parse_args()
    defaults = Sizes(2, 2, 400, 1) if options.quick else Sizes(4, 8, 4000, 3)
    sizes = Sizes(
        options.workers or defaults.workers,
        options.concurrency or defaults.concurrency,
        options.tasks or defaults.tasks,
        options.rounds or defaults.rounds,
    )
    backends = [CHOICES[name] for name in options.backend or CHOICES]
    return sizes, backends


def version() -> str:
    done = subprocess.run([str(PROGRAM), "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).strip().splitlines()[0]


def main() -> None:
    sizes, backends = parse()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the workers are stopped
    logs = Path(tempfile.mkdtemp(prefix="bench_pgbouncer_"))
    print(
        f"{sizes.rounds} round(s): {sizes.workers} workers x -P prefork -c {sizes.concurrency},"
        f" {sizes.tasks} no-op tasks a run; {version()}, pool_mode = transaction,"
        f" default_pool_size = {POOL_SIZE}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    started = time.monotonic()
    runs: list[Run] = []
    try:
        for number in range(1, sizes.rounds + 1):
            print(f"round {number}/{sizes.rounds}", flush=True)
            routes = [DIRECT, BOUNCER] if number % 2 else [BOUNCER, DIRECT]
            for backend in backends:
                for route in routes:
                    tag = f"r{number}-{backend.split()[0].lower()}-{route.lower()}"
                    runs.append(run_once(backend, route, sizes, logs, tag))
    finally:
        drop_database()
        redis_db(BROKER_DB).flushdb()
        report(runs, backends)
        report_logs(runs, logs)
        print(f"\ntotal {time.monotonic() - started:.0f} s, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
