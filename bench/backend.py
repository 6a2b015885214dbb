"""Benchmark: celery_sa's result backend against Celery's DatabaseBackend and Redis, or
against itself before its latest features (``--lifecycle``).

    .venv/bin/python bench/backend.py [--rounds 3] [--tasks 2000] [--quick] [--lifecycle]

Three result backends, all with ``result_extended=True`` and a Redis broker (db 8): Celery's
``db+mysql://`` DatabaseBackend, celery_sa's ``celery_sa+mysql://`` (both on MariaDB database
bench_backend, with the same ``database_engine_options``: bench/backend_tasks.py) and Redis
(db 9). Each round takes them in turn; before each, bench_backend's tables are dropped (each
backend creates its own) and both Redis dbs are flushed. A real ``celery worker -A
bench.backend_tasks`` runs ``-P prefork -c 2``, then ``-P threads -c 4``; each is pinged and
warmed up first, and stopped (its process group killed if need be) afterwards, even on error.
Per worker:

1. tasks/s: N no-op tasks are queued while the worker's consumer is cancelled; the clock
   starts when it is added back and stops when the result store holds all N results (polled
   every 20 ms), so what is timed is the worker running and storing, not the client queueing;
   the client's publish rate is N over the time it took to queue them (one producer, one
   thread; both workers' runs are its samples);
2. connections: MariaDB's processlist rows on bench_backend, sampled every 50 ms during (1),
   peak minus the count before the worker started, against the pool budget (the processes
   that run tasks x (pool_size + max_overflow): 2 children of prefork, 1 process of threads),
   and how many connections the server accepted meanwhile (per 1,000 tasks);
3. a chord of M header tasks: the callback's start minus the last header task's finish (both
   ``time.time()`` in the tasks), and how many ``celery.chord_unlock`` messages the worker
   received (a ``task_received`` signal handler writes each to a file);
4. prefork only: ``GroupResult.get()`` of 500 finished tasks in a fresh Python process (its app
   and backend built first, as any client builds them; ``.get()`` alone is timed).

Every run is printed, then the medians, celery_sa's ratios to the two others and the issue's
targets with PASS/MISS, and what the workers logged at WARNING and above. ``--quick``: one
round with smaller counts.

``--lifecycle``: the same measures of four variants of celery_sa's backend, all on MariaDB
with the same settings (bench/backend_variants.py): ``before``, the code of commit b5b844d
(no sent or start time, no attempt table), ``now``, this checkout's with its defaults (the
publisher stamps a sent time on each message, the worker stores it and the start time, a
retry writes an attempt row), ``+track_sent``, this checkout's with ``sa_track_sent``
(each publish first writes the task's PENDING row), and ``+batched``, with
``sa_track_sent_delay = 0.05`` too (a thread writes the rows together, at most 50 ms
later). Each variant's turn runs in a process of its own, the client included, so
``before`` publishes, creates its tables and reads groups with the old code (no sent stamp)
as its workers store with it. The order rotates from round
to round. With ``sa_track_sent`` every task has a row from its publish on, so a batch is
done when none of its rows is PENDING (found by a walk in task id order, a few rows a poll).
Reported: every run, the medians, ``now / before``, ``+track_sent / now`` and
``+batched / now`` for every measure, and the targets: ``now`` within 5 % of ``before``'s
tasks/s on prefork and on threads, ``GroupResult.get()`` unchanged (the ratio), the publish
rate and tasks/s of ``+track_sent`` and ``+batched``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.backend_tasks import (  # noqa: E402
    CALLBACK,
    ENGINE_OPTIONS,
    NOOP,
    QUEUE,
    STAMP,
    TRACK_SENT,
    backend_origin,
    make_app,
)
from bench.backend_variants import (  # noqa: E402
    BASELINE,
    BATCHED,
    BEFORE,
    NOW,
    RATIOS,
    TRACKED,
    VARIANTS,
    baseline_tree,
    check_origins,
    order,
    run_variant,
    slug,
)
from tests.support.workers import worker_argv, worker_process  # noqa: E402

MYSQL_HOST, MYSQL_PORT, MYSQL_USER = "127.0.0.1", 3306, "root"
DATABASE = "bench_backend"
REDIS = "redis://127.0.0.1:6379"
BROKER_DB, RESULT_DB = 8, 9
BROKER_URL = f"{REDIS}/{BROKER_DB}"
MYSQL_URL = f"mysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{DATABASE}"
BACKENDS = {
    "Celery db+": f"db+{MYSQL_URL}",
    "celery_sa": f"celery_sa+{MYSQL_URL}",
    "Redis": f"{REDIS}/{RESULT_DB}",
}
CELERY, CELERY_SA, REDIS_NAME = BACKENDS
RATIOS_VS = {"vs Celery": (CELERY_SA, CELERY), "vs Redis": (CELERY_SA, REDIS_NAME)}
LIFECYCLE_RATIOS = {f"{top} / {bottom}": (top, bottom) for top, bottom in RATIOS}
POOLS = {"prefork": 2, "threads": 4}
PER_PROCESS = ENGINE_OPTIONS["pool_size"] + ENGINE_OPTIONS["max_overflow"]
POLL = 0.020
SAMPLE = 0.050
WARMUP_PER_SLOT = 10
TIMEOUT = 600.0
TIMESTAMP = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+: ")
QUIET_LINES = {"worker: Warm shutdown (MainProcess)"}


@dataclass(frozen=True)
class Sizes:
    rounds: int
    tasks: int
    group: int
    group_runs: int
    chord: int


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    scale: float
    higher_is_better: bool


def metrics(sizes: Sizes) -> list[Metric]:
    rows = []
    for pool, concurrency in POOLS.items():
        rows.append(
            Metric(f"tps {pool}", f"tasks/s, -P {pool} -c {concurrency}", "tasks/s", 1, True)
        )
    title = f"publish rate, {sizes.tasks} tasks queued by one client"
    rows.append(Metric("publish", title, "tasks/s", 1, True))
    rows.append(
        Metric("group", f"GroupResult.get() of {sizes.group}, fresh process", "ms", 1e3, False)
    )
    for pool in POOLS:
        title = f"chord of {sizes.chord}: callback start - last header, {pool}"
        rows.append(Metric(f"chord {pool}", title, "ms", 1e3, False))
    for pool in POOLS:
        title = f"celery.chord_unlock messages per chord, {pool}"
        rows.append(Metric(f"unlock {pool}", title, "msgs", 1, False))
    for pool, concurrency in POOLS.items():
        title = f"peak DB connections - baseline, {pool} (budget {budget(pool, concurrency)})"
        rows.append(Metric(f"conn {pool}", title, "conns", 1, False))
    for pool in POOLS:
        title = f"DB connections opened per 1,000 tasks, {pool}"
        rows.append(Metric(f"opened {pool}", title, "conns", 1, False))
    return rows


def budget(pool: str, concurrency: int) -> int:
    """pool_size + max_overflow for each process that stores results."""
    processes = concurrency if pool == "prefork" else 1
    return processes * PER_PROCESS


@dataclass
class Samples:
    values: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )

    def add(self, key: str, backend: str, value: float) -> None:
        self.values[key][backend].append(value)

    def runs(self, key: str, backend: str) -> list[float]:
        return self.values[key][backend]

    def median(self, key: str, backend: str) -> float | None:
        runs = self.runs(key, backend)
        return statistics.median(runs) if runs else None

    def merge(self, values: dict[str, dict[str, list[float]]]) -> None:
        for key, by_backend in values.items():
            for backend, runs in by_backend.items():
                self.values[key][backend].extend(runs)


# -- the services -------------------------------------------------------------------------


def mysql() -> Any:
    """A MariaDB connection with no default database (so the processlist count of
    bench_backend leaves it out), in autocommit (every count sees the latest rows)."""
    import MySQLdb

    return MySQLdb.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, autocommit=True)


def redis_db(db: int) -> Any:
    import redis

    return redis.Redis.from_url(f"{REDIS}/{db}")


def reset_stores() -> None:
    """bench_backend without tables, the broker's and Redis results' dbs empty."""
    connection = mysql()
    try:
        cursor = connection.cursor()
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        cursor.execute(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (DATABASE,),
        )
        tables = cursor.fetchall()
        cursor.execute("SET SESSION foreign_key_checks = 0")
        for name, kind in tables:
            what = "SEQUENCE" if kind == "SEQUENCE" else "TABLE"
            cursor.execute(f"DROP {what} IF EXISTS `{DATABASE}`.`{name}`")
    finally:
        connection.close()
    for db in (BROKER_DB, RESULT_DB):
        redis_db(db).flushdb()


class ResultStore(Protocol):
    def stored(self, batch: Batch) -> int:
        """How many of the batch's tasks have a result."""


@dataclass(frozen=True)
class Batch:
    prefix: str
    ids: list[str]


def new_batch(size: int) -> Batch:
    prefix = uuid.uuid4().hex[:12]
    return Batch(prefix, [f"{prefix}-{number:05d}" for number in range(size)])


class DatabaseResults:
    """Counts a batch's rows in celery_taskmeta (its task ids share a prefix: an index
    range)."""

    def __init__(self) -> None:
        self.connection = mysql()

    def stored(self, batch: Batch) -> int:
        import MySQLdb

        cursor = self.connection.cursor()
        try:
            cursor.execute(
                f"SELECT COUNT(*) FROM {DATABASE}.celery_taskmeta WHERE task_id LIKE %s",
                (f"{batch.prefix}-%",),
            )
        except MySQLdb.ProgrammingError:  # the table is not there yet
            return 0
        return int(cursor.fetchone()[0])


class RedisResults:
    """Counts a batch's keys in the Redis results db (one EXISTS of all of them)."""

    def __init__(self) -> None:
        self.client = redis_db(RESULT_DB)

    def stored(self, batch: Batch) -> int:
        return int(self.client.exists(*(f"celery-task-meta-{i}" for i in batch.ids)))


class SentResults:
    """With ``sa_track_sent`` every task has a row from its publish on, PENDING until its
    result: a batch is stored when none of its rows is PENDING. Each poll reads on from the
    first PENDING row the last one found, in task id order (a row never goes back to
    PENDING), so a poll reads a few rows, not the whole batch (its row lookups would load
    the machine the workers run on)."""

    QUERY = (
        f"SELECT task_id FROM {DATABASE}.celery_taskmeta WHERE task_id >= %s"
        " AND task_id LIKE %s AND status = 'PENDING' ORDER BY task_id LIMIT 1"
    )

    def __init__(self) -> None:
        self.database = DatabaseResults()
        self.first_pending: dict[str, str] = {}

    def stored(self, batch: Batch) -> int:
        """The number of the first PENDING task (those before it are stored), or all of
        them when none is PENDING and every task has a row (one published while the
        database refused its PENDING row gets one only with its result)."""
        cursor = self.database.connection.cursor()
        since = self.first_pending.get(batch.prefix, batch.ids[0])
        cursor.execute(self.QUERY, (since, f"{batch.prefix}-%"))
        row = cursor.fetchone()
        if row is None:
            return self.database.stored(batch)
        self.first_pending[batch.prefix] = str(row[0])
        return batch.ids.index(str(row[0]))


def result_store(url: str) -> ResultStore:
    if url.startswith("redis"):
        return RedisResults()
    return SentResults() if TRACK_SENT in os.environ else DatabaseResults()


def wait_stored(store: ResultStore, batch: Batch, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while (done := store.stored(batch)) < len(batch.ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done} of {len(batch.ids)} results stored after {timeout} s")
        time.sleep(POLL)


class ConnectionSampler:
    """MariaDB processlist rows whose database is bench_backend."""

    QUERY = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s"

    def __init__(self) -> None:
        self.connection = mysql()

    def count(self) -> int:
        cursor = self.connection.cursor()
        cursor.execute(self.QUERY, (DATABASE,))
        return int(cursor.fetchone()[0])

    def opened(self) -> int:
        """Connections the server has accepted since it started (any client's)."""
        cursor = self.connection.cursor()
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
        return int(cursor.fetchone()[1])

    def sampling(self) -> AbstractContextManager[list[int]]:
        """Sample every 50 ms in a thread while the block runs, into the list yielded."""
        return sampled(self.count)


@contextmanager
def sampled(count: Callable[[], int], every: float = SAMPLE) -> Iterator[list[int]]:
    """``count()`` every ``every`` seconds in a thread while the block runs, into the list
    yielded."""
    counts: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            counts.append(count())
            stop.wait(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join()


# -- the worker ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Worker:
    node: str
    process: subprocess.Popen[str]
    log: Path


@contextmanager
def running_worker(app: Any, url: str, pool: str, logs: Path, tag: str) -> Iterator[Worker]:
    """A ``celery worker`` on the backend ``url``, answering pings and warmed up; stopped
    after (its process group killed if need be)."""
    node = f"bench-{pool}-{uuid.uuid4().hex[:6]}@localhost"
    log = logs / f"{tag}-{pool}.log"
    env = dict(
        os.environ,
        PYTHONPATH=python_path(),
        BENCH_BROKER_URL=BROKER_URL,
        BENCH_RESULT_BACKEND=url,
        BENCH_UNLOCK_LOG=str(unlock_log(logs, tag)),
        BENCH_ORIGIN_LOG=str(origin_log(logs, tag)),
        # Not the benchmark's business (a root container), and it would fill the logs.
        PYTHONWARNINGS="ignore:You're running the worker with superuser privileges",
    )
    argv = worker_argv(
        "bench.backend_tasks",
        queue=QUEUE,
        node=node,
        pool=pool,
        concurrency=POOLS[pool],
        loglevel="WARNING",
        quiet=True,
    )
    with open(log, "w") as output, worker_process(argv, env, output, stop_timeout=20) as process:
        worker = Worker(node, process, log)
        wait_ready(app, worker)
        warm_up(app, worker, result_store(url))
        yield worker


def unlock_log(logs: Path, tag: str) -> Path:
    """The ``celery.chord_unlock`` messages the worker received (bench/backend_tasks.py)."""
    return logs / f"{tag}-unlock.txt"


def origin_log(logs: Path, tag: str) -> Path:
    """The files the client's and the workers' backend classes came from."""
    return logs / f"{tag}-origin.txt"


def python_path() -> str:
    """The checkout first (``-A bench.backend_tasks``), then the caller's PYTHONPATH."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def wait_ready(app: Any, worker: Worker, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not app.control.ping(destination=[worker.node], timeout=0.5):
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.process.returncode}): {worker.log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker did not answer a ping in {timeout} s: {worker.log}")


def warm_up(app: Any, worker: Worker, store: ResultStore) -> None:
    """Enough tasks that every pool process has opened its engine and stored results."""
    batch = new_batch(WARMUP_PER_SLOT * max(POOLS.values()))
    enqueue(app, NOOP, batch)
    wait_stored(store, batch, timeout=120)


def control(app: Any, worker: Worker, command: str) -> None:
    """``cancel_consumer`` or ``add_consumer`` of the benchmark's queue, confirmed."""
    replies = getattr(app.control, command)(
        QUEUE, destination=[worker.node], reply=True, timeout=10
    )
    if not replies:
        raise RuntimeError(f"{command}: no reply from {worker.node}")


def enqueue(app: Any, name: str, batch: Batch) -> None:
    with app.producer_or_acquire() as producer:
        for task_id in batch.ids:
            app.send_task(name, task_id=task_id, producer=producer)


# -- the measurements ---------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    per_second: float
    queueing: float
    """Seconds the client took to queue the tasks (not timed)."""
    peak: int | None
    """The most processlist rows on bench_backend meanwhile."""
    opened: int | None
    """Connections the server accepted meanwhile."""


def throughput(
    app: Any, worker: Worker, store: ResultStore, sampler: ConnectionSampler | None, size: int
) -> Throughput:
    """The worker storing ``size`` results queued beforehand."""
    batch = new_batch(size)
    control(app, worker, "cancel_consumer")
    queued_at = time.perf_counter()
    enqueue(app, NOOP, batch)
    queueing = time.perf_counter() - queued_at
    opened = sampler.opened() if sampler else 0
    with sampler.sampling() if sampler else nullsampling() as counts:
        started = time.perf_counter()
        control(app, worker, "add_consumer")
        wait_stored(store, batch)
        elapsed = time.perf_counter() - started
    if sampler is None:
        return Throughput(size / elapsed, queueing, None, None)
    return Throughput(size / elapsed, queueing, max(counts), sampler.opened() - opened)


@contextmanager
def nullsampling() -> Iterator[list[int]]:
    yield []


def chord_run(app: Any, size: int, unlock_log: Path) -> tuple[float, int]:
    """The callback's delay after the last header task, and the chord_unlock messages."""
    from celery import chord

    unlock_log.write_text("")
    header = [app.signature(STAMP) for _ in range(size)]
    result = chord(header, app.signature(CALLBACK), app=app).apply_async()
    info = result.get(timeout=TIMEOUT, interval=0.05)
    if info["parts"] != size:
        raise RuntimeError(f"the callback got {info['parts']} results of {size}")
    unlocks = len(unlock_log.read_text().splitlines())
    return info["started"] - info["last_header"], unlocks


def group_runs(
    app: Any, store: ResultStore, url: str, size: int, runs: int, logs: Path
) -> list[float]:
    """Seconds of ``GroupResult.get()`` of ``size`` finished tasks, each in a new process."""
    batch = new_batch(size)
    enqueue(app, NOOP, batch)
    wait_stored(store, batch)
    ids = logs / "group-ids.json"
    ids.write_text(json.dumps(batch.ids))
    return [group_get_in_subprocess(url, ids) for _ in range(runs)]


def group_get_in_subprocess(url: str, ids: Path) -> float:
    argv = [sys.executable, str(Path(__file__).resolve()), "--group-get", str(ids)]
    argv += ["--backend-url", url]
    env = dict(os.environ, PYTHONPATH=python_path())
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"GroupResult.get() process failed:\n{done.stderr}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def group_get(backend_url: str, ids_path: Path) -> float:
    """In the fresh process: build the app, then time ``GroupResult.get()`` alone."""
    from celery.utils import uuid as celery_uuid

    ids = json.loads(ids_path.read_text())
    app = make_app(BROKER_URL, backend_url)
    _ = app.backend  # built as any client builds it (the database ones check their tables)
    group = app.GroupResult(celery_uuid(), [app.AsyncResult(task_id) for task_id in ids])
    started = time.perf_counter()
    values = group.get(timeout=TIMEOUT)
    elapsed = time.perf_counter() - started
    if len(values) != len(ids):
        raise RuntimeError(f"{len(values)} results of {len(ids)}")
    return elapsed


# -- a round ------------------------------------------------------------------------------


@dataclass
class BackendRun:
    """One backend's turn in a round: its client app, result store and counters."""

    name: str
    """The backend's (or the variant's) name in the report."""
    url: str
    sizes: Sizes
    samples: Samples
    logs: Path
    tag: str
    app: Any
    store: ResultStore
    sampler: ConnectionSampler | None
    baseline: int


def run_backend(name: str, url: str, sizes: Sizes, samples: Samples, logs: Path, tag: str) -> None:
    """Both workers on the backend ``url``, from clean stores, their figures as ``name``'s."""
    reset_stores()
    app = make_app(BROKER_URL, url)
    _ = app.backend  # the client's backend (and tables) exist before the baseline is read
    origin_log(logs, tag).write_text(f"{backend_origin(app)}\n")
    sampler = None if url.startswith("redis") else ConnectionSampler()
    baseline = sampler.count() if sampler else 0
    run = BackendRun(
        name, url, sizes, samples, logs, tag, app, result_store(url), sampler, baseline
    )
    try:
        for pool in POOLS:
            with running_worker(app, url, pool, logs, tag) as worker:
                measure(run, worker, pool)
    finally:
        app.close()
        dispose_client_engines()


def measure(run: BackendRun, worker: Worker, pool: str) -> None:
    """Tasks/s and connections, a chord, and (prefork) GroupResult.get() on one worker."""
    sizes, backend = run.sizes, run.name
    done = throughput(run.app, worker, run.store, run.sampler, sizes.tasks)
    run.samples.add(f"tps {pool}", backend, done.per_second)
    published = sizes.tasks / done.queueing
    run.samples.add("publish", backend, published)
    line = f"  {backend:<11} {pool:<8} {done.per_second:6.0f} tasks/s"
    line += f" (queued beforehand in {done.queueing:.2f} s: {published:.0f} published/s)"
    if done.peak is not None and done.opened is not None:
        connections = done.peak - run.baseline
        run.samples.add(f"conn {pool}", backend, connections)
        run.samples.add(f"opened {pool}", backend, done.opened / sizes.tasks * 1000)
        line += f", connections {connections} (budget {budget(pool, POOLS[pool])})"
        line += f", {done.opened} opened"
    latency, unlocks = chord_run(run.app, sizes.chord, unlock_log(run.logs, run.tag))
    run.samples.add(f"chord {pool}", backend, latency)
    run.samples.add(f"unlock {pool}", backend, unlocks)
    line += f", chord callback +{latency * 1e3:.1f} ms, {unlocks} chord_unlock"
    if pool == "prefork":
        seconds = group_runs(run.app, run.store, run.url, sizes.group, sizes.group_runs, run.logs)
        for value in seconds:
            run.samples.add("group", backend, value)
        line += ", GroupResult.get() " + " ".join(f"{value * 1e3:.1f}" for value in seconds)
        line += " ms"
    print(line, flush=True)


def dispose_client_engines() -> None:
    """celery_sa's pooled engines of this process (the next backend starts clean)."""
    store = sys.modules.get("celery_sa.backend.store")
    if store is not None:
        store.dispose_stores()


# -- the report ---------------------------------------------------------------------------


def show(metric: Metric, value: float | None) -> str:
    if value is None:
        return "-"
    scaled = value * metric.scale
    return f"{scaled:.1f}" if metric.unit == "ms" else f"{scaled:.0f}"


def ratio(samples: Samples, key: str, top: str, bottom: str) -> float | None:
    a, b = samples.median(key, top), samples.median(key, bottom)
    if a is None or b is None or b == 0:
        return None
    return a / b


def times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def report_runs(samples: Samples, sizes: Sizes, names: Iterable[str]) -> None:
    print("\n== every run and the median ==")
    for metric in metrics(sizes):
        print(f"{metric.title} [{metric.unit}]")
        for name in names:
            runs = samples.runs(metric.key, name)
            if not runs:
                continue
            median = show(metric, samples.median(metric.key, name))
            listed = ", ".join(show(metric, value) for value in runs)
            print(f"  {name:<11} median {median:>8}   runs: {listed}")


def report_ratios(
    samples: Samples, sizes: Sizes, heading: str, pairs: dict[str, tuple[str, str]]
) -> None:
    """For each measure, the median of the first of each pair over the second's."""
    print(f"\n== {heading} ==")
    for metric in metrics(sizes):
        better = "higher" if metric.higher_is_better else "lower"
        shown = (
            f"{label} {times(ratio(samples, metric.key, top, bottom)):>8}"
            for label, (top, bottom) in pairs.items()
        )
        print(f"  {metric.title:<62} {'   '.join(shown)}   ({better} is better)")


def check(text: str, value: float | None, shown: str, passed: Callable[[float], bool]) -> None:
    verdict = "MISS" if value is None or not passed(value) else "PASS"
    print(f"  {verdict}  {text:<62} {shown}")


def note(text: str, shown: str) -> None:
    """A figure the issue asks for, with no target."""
    print(f"  INFO  {text:<62} {shown}")


def report_targets(samples: Samples) -> None:
    print("\n== the issue's targets (medians) ==")
    for pool, (vs_celery, vs_redis) in {"threads": (3.0, 0.7), "prefork": (1.3, 0.85)}.items():
        key = f"tps {pool}"
        value = ratio(samples, key, CELERY_SA, CELERY)
        text = f"{pool}: celery_sa >= {vs_celery}x Celery's tasks/s"
        check(text, value, times(value), lambda v, t=vs_celery: v >= t)
        value = ratio(samples, key, CELERY_SA, REDIS_NAME)
        text = f"{pool}: celery_sa >= {vs_redis}x Redis's tasks/s"
        check(text, value, times(value), lambda v, t=vs_redis: v >= t)
    value = ratio(samples, "group", CELERY, CELERY_SA)
    text = "GroupResult.get(): celery_sa >= 20x faster than Celery's"
    check(text, value, f"{times(value)} faster", lambda v: v >= 20)
    value = ratio(samples, "group", CELERY_SA, REDIS_NAME)
    text = "GroupResult.get(): celery_sa's time <= 2x Redis's"
    check(text, value, f"{times(value)} Redis's time", lambda v: v <= 2)
    for pool in POOLS:
        value = samples.median(f"chord {pool}", CELERY_SA)
        runs = samples.runs(f"chord {pool}", CELERY_SA)
        worst = f", worst {max(runs) * 1e3:.1f} ms" if runs else ""
        shown = "-" if value is None else f"{value * 1e3:.1f} ms{worst}"
        text = f"{pool}: chord callback <= 100 ms after the last header task"
        check(text, value, shown, lambda v: v <= 0.100)
        unlocks = samples.runs(f"unlock {pool}", CELERY_SA)
        total = sum(unlocks) if unlocks else None
        shown = "-" if total is None else f"{total:.0f} in {len(unlocks)} chords"
        check(f"{pool}: 0 celery.chord_unlock messages", total, shown, lambda v: v == 0)


def report_lifecycle_targets(samples: Samples, sizes: Sizes) -> None:
    print("\n== the issue's targets (medians) ==")
    for pool in POOLS:
        value = ratio(samples, f"tps {pool}", NOW, BEFORE)
        text = f"{pool}: now's tasks/s within 5 % of before's (>= 0.95x)"
        check(text, value, f"{times(value)} before's", lambda v: v >= 0.95)
    value = ratio(samples, "group", NOW, BEFORE)
    note("GroupResult.get(): unchanged (now's time / before's)", times(value))
    for variant in (TRACKED, BATCHED):
        for metric in metrics(sizes):
            if metric.key in ("publish", "tps prefork", "tps threads"):
                median = show(metric, samples.median(metric.key, variant))
                to_now = times(ratio(samples, metric.key, variant, NOW))
                note(f"{variant}: {metric.title}", f"{median} {metric.unit} ({to_now} now's)")


def report_logs(logs: Path) -> None:
    """What the workers logged at WARNING and above, each distinct line once, counted."""
    print("\n== worker logs (WARNING and above; timestamps dropped, counted) ==")
    seen: dict[str, list[str]] = {}
    for log in sorted(logs.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            text = TIMESTAMP.sub("[", line.rstrip())
            if text.strip() and text not in QUIET_LINES:
                seen.setdefault(text, []).append(log.stem)
    for text, where in seen.items():
        files = sorted(set(where))
        shown = ", ".join(files[:3]) + (f" +{len(files) - 3}" if len(files) > 3 else "")
        print(f"  {len(where):4}x {text[:160]}   ({shown})")
    print(f"  {'nothing else; ' if not seen else ''}the logs are in {logs}")


# -- main ---------------------------------------------------------------------------------


def parse_sizes(argv: list[str] | None = None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, smaller counts")
    parser.add_argument("--rounds", type=int, help="default 3 (--quick: 1)")
    parser.add_argument("--tasks", type=int, help="tasks per tasks/s run, default 2000 (300)")
    parser.add_argument("--group", type=int, help="GroupResult size, default 500 (100)")
    parser.add_argument("--group-runs", type=int, help="per round, default 2 (1)")
    parser.add_argument("--chord", type=int, help="chord header size, default 1000 (100)")
    parser.add_argument(
        "--lifecycle",
        action="store_true",
        help=f"celery_sa's backend {BEFORE} ({BASELINE}), {NOW}, {TRACKED} and {BATCHED} instead",
    )
    parser.add_argument("--group-get", help=argparse.SUPPRESS)
    parser.add_argument("--backend-url", help=argparse.SUPPRESS)
    # One variant's turn of --lifecycle, in its own process.
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    parser.add_argument("--logs", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    defaults = Sizes(1, 300, 100, 1, 100) if options.quick else Sizes(3, 2000, 500, 2, 1000)
    sizes = Sizes(
        options.rounds or defaults.rounds,
        options.tasks or defaults.tasks,
        options.group or defaults.group,
        options.group_runs or defaults.group_runs,
        options.chord or defaults.chord,
    )
    return options, sizes


def samples_file(logs: Path, tag: str) -> Path:
    """A --lifecycle variant's turn's figures, from its process."""
    return logs / f"{tag}-samples.json"


def lifecycle_round(number: int, sizes: Sizes, samples: Samples, logs: Path, tree: Path) -> None:
    """Each variant's turn in a process of its own (``--variant``)."""
    for variant in order(number):
        tag = f"r{number}-{slug(variant)}"
        argv = [sys.executable, str(Path(__file__).resolve()), "--variant", variant]
        argv += ["--tag", tag, "--logs", str(logs), "--tasks", str(sizes.tasks)]
        argv += ["--group", str(sizes.group), "--group-runs", str(sizes.group_runs)]
        argv += ["--chord", str(sizes.chord)]
        samples.merge(run_variant(variant, tree, argv, samples_file(logs, tag)))
        print(check_origins(variant, tree, origin_log(logs, tag)), flush=True)


def variant_turn(variant: str, sizes: Sizes, logs: Path, tag: str) -> None:
    """In the variant's process: both workers on celery_sa's backend, its figures saved."""
    samples = Samples()
    run_backend(variant, BACKENDS[CELERY_SA], sizes, samples, logs, tag)
    samples_file(logs, tag).write_text(json.dumps(samples.values))


def main() -> None:
    options, sizes = parse_sizes()
    if options.group_get:
        seconds = group_get(options.backend_url, Path(options.group_get))
        print(json.dumps({"seconds": seconds}))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the workers are stopped
    if options.variant:
        variant_turn(options.variant, sizes, Path(options.logs), options.tag)
        return
    logs = Path(tempfile.mkdtemp(prefix="bench_backend_"))
    samples = Samples()
    started = time.monotonic()
    tree = baseline_tree() if options.lifecycle else None
    print(
        f"{sizes.rounds} round(s): {sizes.tasks} no-op tasks per tasks/s run, chords of"
        f" {sizes.chord}, GroupResult.get() of {sizes.group} x {sizes.group_runs} a round;"
        f" engine options {ENGINE_OPTIONS}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    if tree is not None:
        print(f"{BEFORE}: celery_sa of {BASELINE} from {tree.relative_to(ROOT)}", flush=True)
    try:
        for number in range(1, sizes.rounds + 1):
            print(f"round {number}/{sizes.rounds}", flush=True)
            if tree is not None:
                lifecycle_round(number, sizes, samples, logs, tree)
                continue
            for backend, url in BACKENDS.items():
                tag = f"r{number}-{backend.split()[0].lower()}"
                run_backend(backend, url, sizes, samples, logs, tag)
    finally:
        if tree is not None:
            report_runs(samples, sizes, VARIANTS)
            report_ratios(samples, sizes, "median / median", LIFECYCLE_RATIOS)
            report_lifecycle_targets(samples, sizes)
        else:
            report_runs(samples, sizes, BACKENDS)
            report_ratios(samples, sizes, "celery_sa's median / the others' median", RATIOS_VS)
            report_targets(samples)
        report_logs(logs)
        print(f"\ntotal {time.monotonic() - started:.0f} s, load average {os.getloadavg()[0]:.2f}")
        reset_stores()


if __name__ == "__main__":
    main()
