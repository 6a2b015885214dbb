"""A failover under load, as an operator lives it: a private MariaDB or PostgreSQL behind
celery_sa's backend (its defaults: a 120 s budget), a prefork worker and a threads worker
with the production settings, hundreds of chords, while the database is stopped for 5, 30
and 90 seconds, then killed with SIGKILL, and two pool children are killed. Every result is
stored, every callback runs exactly once, and the backend stores again soon after the
database answers (measured; the figures go to test-artifacts/failover.json).

Marked ``outage`` (about 3 minutes per database): the README's test command leaves them out,
``bash project/run test -m outage`` runs them, and CI runs them in a lane of their own."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from celery import chord
from celery.result import AsyncResult
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from tests.support.commands import BASE_DIR
from tests.support.private_servers import PrivateServer, private_server
from tests.support.services import service_url
from tests.support.workers import Worker, producer, running_worker

pytestmark = pytest.mark.outage

TASKS = "tests.support.backend_tasks"
ARTIFACT = BASE_DIR / "test-artifacts" / "failover.json"
CHORDS, SIZE = 300, 5
# The settings docs/guides/production.md gives; the backend's retry budget is its default.
PRODUCTION = {
    "CELERY_TASK_ACKS_LATE": "true",
    "CELERY_TASK_REJECT_ON_WORKER_LOST": "true",
    "CELERY_WORKER_PREFETCH_MULTIPLIER": "1",
    "CELERY_IMPORTS": TASKS,
}
POOLS = (("prefork", 2), ("threads", 4))
# How long the database is down each time, and how it goes down.
OUTAGES = ((5, "stopped"), (30, "stopped"), (90, "stopped"), (5, "killed"))
# Seconds each header task takes: a batch (75 chords, 450 tasks on 6 processes) lasts about
# 12 s, so that much of it is left to store when the database answers again. At 0.02 s a
# batch could be stored, but for a task or two, while a busy machine stopped the database,
# and the recovery then had nothing to measure (CI, 2026-12-07: "timed out waiting for a
# result stored after the outage").
NAP = 0.2


class Load:
    """The chords sent, and what the database holds of them."""

    def __init__(self, url: str, runs: Path) -> None:
        self.engine: Engine = create_engine(url, poolclass=NullPool)
        self.runs = runs

    def stored(self) -> int | None:
        """Results stored (None while the database does not answer)."""
        try:
            with self.engine.connect() as connection:
                count = connection.execute(
                    text("SELECT COUNT(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
                ).scalar_one()
        except SQLAlchemyError:
            return None
        return int(count)

    def started(self) -> Counter[str]:
        """How often each task id started, over both workers."""
        return Counter(task_id for task_id, _ in self.starts())

    def starts(self) -> list[tuple[str, int]]:
        """(task id, process id) of every start, in order."""
        lines = self.runs.read_text().splitlines()
        return [(task_id, int(pid)) for task_id, _name, pid in (line.split() for line in lines)]


def wait_for(
    condition: Callable[[], bool], workers: list[Worker], timeout: float, what: str
) -> None:
    if not reaches(condition, workers, timeout):
        output = "\n".join(w.output[-4000:] for w in workers)
        pytest.fail(f"timed out waiting for {what}; workers' output:\n{output}")


def reaches(condition: Callable[[], bool], workers: list[Worker], timeout: float) -> bool:
    """Whether ``condition`` holds within ``timeout`` seconds, the workers all running."""
    deadline = time.monotonic() + timeout
    while not condition():
        if any(w.process.poll() is not None for w in workers) or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def recovery(load: Load, workers: list[Worker]) -> float:
    """Seconds from the database answering again (now) to the first result stored after
    its first count (an upper bound: a result stored before that count is not seen)."""
    answered = time.monotonic()
    before = load.stored()
    assert before is not None, "the database answers"
    wait_for(lambda: (load.stored() or 0) > before, workers, 60, "a result stored after the outage")
    return round(time.monotonic() - answered, 2)


def outages(
    server: PrivateServer,
    load: Load,
    workers: list[Worker],
    send: Callable[[int], None],
    figures: dict[str, Any],
) -> None:
    """Each outage of :data:`OUTAGES`, once the workers are storing a batch of chords sent
    just before it, so that results are still to store when the database answers again (a
    load sent all at once could be done before the later outages); the recovery measured."""
    for seconds, how in OUTAGES:
        before = load.stored() or 0
        send(CHORDS // len(OUTAGES))
        wait_for(lambda n=before: (load.stored() or 0) > n, workers, 120, "the batch's results")
        if how == "killed":
            server.kill()
        else:
            server.stop()
        time.sleep(seconds)
        server.start()
        figures[f"{how} {seconds} s: stored again after (s)"] = recovery(load, workers)


def pool_children(worker: Worker) -> list[int]:
    pid = worker.process.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrivateServer]:
    with private_server(request.param, tmp_path / "database") as started:
        yield started


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "server",
    [
        pytest.param(kind, marks=pytest.mark.services(kind, "redis"), id=kind)
        for kind in ("mysql", "postgresql")
    ],
    indirect=True,
)
def test_a_failover_under_a_chord_load_loses_nothing_and_runs_each_callback_once(
    server: PrivateServer, tmp_path: Path
) -> None:
    url = server.url
    broker = service_url("redis")
    load = Load(url, tmp_path / "runs.log")
    figures: dict[str, Any] = {"chords": CHORDS, "header tasks": CHORDS * SIZE}
    with ExitStack() as stack:

        def start(pool: str, concurrency: int, queue: str | None = None) -> Worker:
            return stack.enter_context(
                running_worker(
                    tmp_path,
                    result_url=f"celery_sa+{url}",
                    broker_url=broker,
                    pool=pool,
                    concurrency=concurrency,
                    queue=queue,
                    CELERY_SA_TEST_RUNS_FILE=str(load.runs),
                    **PRODUCTION,
                )
            )

        workers = [start(pool, concurrency) for pool, concurrency in POOLS]
        app = producer(broker, f"celery_sa+{url}")
        stack.callback(app.close)
        results: list[AsyncResult] = []  # type: ignore[type-arg]

        def send(chords: int) -> None:
            for _ in range(chords):
                n = len(results)
                queue = workers[n % len(workers)].queue
                header = [
                    app.signature(f"{TASKS}.nap", (NAP, n * SIZE + i), queue=queue)
                    for i in range(SIZE)
                ]
                body = app.signature(f"{TASKS}.collect", queue=queue)
                results.append(chord(header, body).delay())

        total = CHORDS * (SIZE + 1)
        outages(server, load, workers, send, figures)
        send(CHORDS - len(results))

        def reached(share: float) -> Callable[[], bool]:
            return lambda: (load.stored() or 0) >= share * total

        killed = pool_children(workers[0])[:2]
        for child in killed:
            os.kill(child, signal.SIGKILL)
        # A message the worker had handed to a child that died before taking it is neither
        # run nor acknowledged: it stays in Redis's unacknowledged set until the transport's
        # visibility timeout (an hour) or the worker's warm shutdown gives it back. The
        # worker is then restarted, as an operator (or a deploy) would.
        stopped = [] if reaches(reached(1.0), workers, 120) else [workers[0]]
        figures["prefork worker restarted to get back its messages"] = bool(stopped)
        if stopped:
            workers[0].process.terminate()
            workers[0].process.wait(120)
            workers[0] = start(*POOLS[0], queue=stopped[0].queue)
        if not reaches(reached(1.0), workers, 300):
            missing(load, results, [*stopped, *workers])
        values = [result.get(timeout=60) for result in results]
        outputs = [w.output for w in [*stopped, *workers]]
    assert values == [list(range(n * SIZE, (n + 1) * SIZE)) for n in range(CHORDS)]
    check_runs(load, {result.id for result in results}, killed, total, figures)
    figures["retries logged"] = sum(o.count("Failed operation") for o in outputs)
    assert load.stored() == total
    with load.engine.connect() as connection:
        left = connection.execute(text("SELECT group_id, date_fired FROM celery_sa_chord")).all()
    # A chord whose claimant was killed after sending its callback keeps its counter until the
    # sweep forgets it (5 minutes after the claim, its callback having a result): every
    # callback has run (above), and no counter may be left that nobody claimed.
    assert all(fired is not None for _, fired in left), left
    figures["counters left to the sweep"] = len(left)
    load.engine.dispose()
    assert figures["retries logged"] > 0  # the outages were felt
    assert max(v for k, v in figures.items() if "stored again" in k) < 2.0, figures
    record(server.url.partition(":")[0], figures)


def missing(load: Load, results: list[AsyncResult], workers: list[Worker]) -> None:  # type: ignore[type-arg]
    """Fail the test naming each result still missing: whose it is (a chord's header task
    or its callback), its state, how often it started, what the workers logged of it, and the
    chords still counted (with what the workers logged of each and of its claimant). When
    the only results missing are callbacks of :func:`killed_claimants`, the test is an
    expected failure that names them."""
    roles: dict[str, str] = {}
    for n, result in enumerate(results):
        roles[result.id] = f"callback of chord {n} (group {result.parent.id})"
        roles.update(
            {
                part.id: f"header task {i} of chord {n}"
                for i, part in enumerate(result.parent.results)
            }
        )
    with load.engine.connect() as connection:
        states = dict(connection.execute(text("SELECT task_id, status FROM celery_taskmeta")).all())
        counted = connection.execute(
            text(
                "SELECT c.group_id, c.chord_size, c.date_fired, c.claimed_by, COUNT(p.task_id) "
                "FROM celery_sa_chord c LEFT JOIN celery_sa_chord_part p "
                "ON p.group_id = c.group_id "
                "GROUP BY c.group_id, c.chord_size, c.date_fired, c.claimed_by"
            )
        ).all()
    started = load.started()
    lost = [task_id for task_id in roles if states.get(task_id) != "SUCCESS"]
    report = [f"{len(lost)} result(s) missing:"]
    for task_id in lost[:20]:
        logged = [
            line.strip()[:300] for worker in workers for line in worker.lines if task_id in line
        ]
        report.append(
            f"- {roles[task_id]} {task_id}: state {states.get(task_id)}, started "
            f"{started[task_id]} time(s); logged: {logged[:6]}"
        )
    report.append("chords still counted (group, size, fired, claimed by, parts):")
    for row in counted[:20]:
        # What the workers logged of the chord and of the task that claimed it.
        ids = [str(value) for value in (row[0], row[3]) if value]
        logged = [
            line.strip()[:300]
            for worker in workers
            for line in worker.lines
            if any(i in line for i in ids) and "chord sweep" not in line
        ]
        report.append(f"- {tuple(row)}; logged: {logged[:10]}")
    if lost and all(task_id in killed_claimants(results, counted, workers) for task_id in lost):
        pytest.xfail("known limitation: a claimant killed before it sent\n" + "\n".join(report))
    pytest.fail("\n".join(report))


def killed_claimants(
    results: list[AsyncResult],  # type: ignore[type-arg]
    counted: Sequence[Any],
    workers: list[Worker],
) -> set[str]:
    """The callbacks of the chords claimed by a header task whose pool child this test
    killed after its result was stored (Celery 5.7 then acks it: "succeeded before the
    worker was lost", so it never runs again). Seen in CI: the claim's commit answer lost
    as MariaDB was killed, the claimant retrying it until its child was killed: the chord
    stays claimed and its callback is never sent; the sweep reports it (a limitation the
    backend guide describes)."""
    lost_after_success = {
        claimant
        for _, _, fired, claimant, _ in counted
        if fired is not None
        and claimant
        and any(
            claimant in line and "succeeded before the worker was lost" in line
            for worker in workers
            for line in worker.lines
        )
    }
    groups = {row[0] for row in counted if row[3] in lost_after_success}
    return {result.id for result in results if result.parent.id in groups}


def check_runs(
    load: Load, callbacks: set[str], killed: list[int], total: int, figures: dict[str, Any]
) -> None:
    """A callback runs once, unless the pool child running it was one of those killed:
    then, with late acks, its message is delivered again (as any task's), and it runs
    again."""
    started = load.started()
    first_pid: dict[str, int] = {}
    for task_id, pid in load.starts():
        first_pid.setdefault(task_id, pid)
    again = {i: n for i, n in started.items() if i in callbacks and n > 1}
    unexplained = {i: n for i, n in again.items() if first_pid[i] not in killed}
    assert not unexplained, f"callbacks sent more than once: {unexplained}"
    figures["callbacks run again (their pool child killed)"] = len(again)
    figures["header tasks run again"] = (
        sum(started.values()) - total - sum(again.values()) + len(again)
    )


def record(kind: str, figures: dict[str, Any]) -> None:
    ARTIFACT.parent.mkdir(exist_ok=True)
    data = json.loads(ARTIFACT.read_text()) if ARTIFACT.exists() else {}
    data[kind] = figures
    ARTIFACT.write_text(json.dumps(data, indent=2))
