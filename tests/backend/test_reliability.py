"""Reliability: a database restart under load, a pool child killed mid-transaction, a
sustained load (2,500 tasks; ``CELERY_SA_TEST_LOAD_TASKS``, 10,000 in bench/reliability.py)
with the admin read meanwhile. Real workers (prefork -c 2) on Redis; the figures go to
test-artifacts/reliability.json (bench/reliability.py prints them).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celery
import pytest
from celery import Celery
from django.db import connections
from django.test import Client
from django.urls import reverse
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.settings import TEST_DATABASE
from tests.support.commands import BASE_DIR
from tests.support.databases import fresh_result_db, result_db_param, tagged
from tests.support.mariadb import PrivateMariaDB
from tests.support.services import service_url
from tests.support.worker_tasks import Base
from tests.support.workers import Worker, pool_answers, producer, running_worker

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.services("redis"),
]
ARTIFACT = BASE_DIR / "test-artifacts" / "reliability.json"
LOAD_USER = tagged("celery_sa_load")
# Each pool process: a SessionTask engine and Celery's result engine of 2 + 1 connections.
POOL: dict[str, Any] = {"pool_size": 2, "max_overflow": 1, "isolation_level": "READ COMMITTED"}
PROCESSES = 2
ADMIN_EVERY = 1.0  # seconds between two requests of the admin's list under load
# Tasks of the sustained load: 2,500 in the suite; bench/reliability.py measures 10,000.
LOAD_TASKS = int(os.environ.get("CELERY_SA_TEST_LOAD_TASKS", "2500"))
BUDGET = PROCESSES * 2 * (POOL["pool_size"] + POOL["max_overflow"])


def celery_engine_pool(pool: dict[str, Any]) -> dict[str, Any]:
    """Celery's result engine options: Celery 5.5 refuses max_overflow (check E010)."""
    if celery.VERSION < (5, 6):
        return {key: value for key, value in pool.items() if key != "max_overflow"}
    return pool


# The settings docs/guides/production.md recommends, as the demo project reads them.
PRODUCTION = {
    "CELERY_TASK_ACKS_LATE": "true",
    "CELERY_TASK_REJECT_ON_WORKER_LOST": "true",
    "CELERY_WORKER_PREFETCH_MULTIPLIER": "1",
    "CELERY_RESULT_BACKEND_ALWAYS_RETRY": "true",
    "CELERY_DATABASE_ENGINE_OPTIONS": json.dumps(
        {"pool_pre_ping": True, "pool_recycle": 3600, **celery_engine_pool(POOL)}
    ),
    "CELERY_SA_ENGINE_OPTIONS": json.dumps(POOL),
    "CELERY_IMPORTS": "tests.support.worker_tasks",
}
# Of those, what brings a task back after its worker is lost; Celery's defaults have none.
REDELIVERY = (
    "CELERY_TASK_ACKS_LATE",
    "CELERY_TASK_REJECT_ON_WORKER_LOST",
    "CELERY_WORKER_PREFETCH_MULTIPLIER",
)


def record(scenario: str, figures: dict[str, Any]) -> None:
    """Add a scenario's figures to the artifact bench/reliability.py reads."""
    ARTIFACT.parent.mkdir(exist_ok=True)
    data = json.loads(ARTIFACT.read_text()) if ARTIFACT.exists() else {}
    data[scenario] = figures
    ARTIFACT.write_text(json.dumps(data, indent=2))


def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def wait_for(condition: Callable[[], bool], worker: Worker, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or worker.process.poll() is not None:
            pytest.fail(f"timed out waiting for {what}; worker output:\n{worker.output[-6000:]}")
        time.sleep(0.2)


def healthy_processes(app: Celery, worker: Worker) -> dict[int, dict[str, Any]]:
    """Each pool process answers a probe that uses its SessionTask engine and stores a
    result through Celery's engine: no process is left with a broken connection."""
    return pool_answers(app, worker, PROCESSES, timeout=60)


# --- a database restart under load ----------------------------------------------------


# Celery 5.5's own backend never retries a failed store (its database backend defines no
# exception_safe_to_retry before 5.6): a restart loses results there, as
# docs/guides/production.md says.
RESTARTABLE = ["db", "celery_sa"] if celery.VERSION >= (5, 6) else ["celery_sa"]


# MariaDB: where it is a service, its server binaries are installed for a private one.
@pytest.mark.services("mysql")
@pytest.mark.parametrize("backend", RESTARTABLE)
# Its own waits (120 s before the restart, 300 s after) fail with the worker's output; on a
# machine busy with a second suite the whole may pass pytest-timeout's 300 s without a loss.
@pytest.mark.load
@pytest.mark.timeout(600)
def test_a_database_restart_under_load_loses_no_result_and_writes_no_row_twice(
    private_mariadb: PrivateMariaDB, tmp_path: Path, backend: str
) -> None:
    """On Celery's database backend and on celery_sa's (``db+…``, ``celery_sa+…``)."""
    broker = service_url("redis")
    url = private_mariadb.url
    engine = create_engine(url, poolclass=NullPool)
    Base.metadata.create_all(engine)
    engine.dispose()
    keys = [f"k{n}" for n in range(2000)]
    with running_worker(
        tmp_path,
        result_url=f"{backend}+{url}",
        broker_url=broker,
        concurrency=PROCESSES,
        CELERY_SA_DATABASE_URL=url,
        CELERY_SA_TEST_DONE_FILE=str(tmp_path / "done.log"),
        **PRODUCTION,
        # Celery's own backend retries a count of times; celery_sa's for 120 s.
        **({"CELERY_RESULT_BACKEND_MAX_RETRIES": "20"} if backend == "db" else {}),
    ) as worker:
        app = producer(broker, f"{backend}+{url}")
        started = time.monotonic()
        ids = [
            # 10 ms inside the transaction: the restart may catch a task mid-write.
            app.send_task(
                "tests.support.worker_tasks.store_once", (key, 0.01), queue=worker.queue
            ).id
            for key in keys
        ]

        def finished() -> int:
            path = tmp_path / "done.log"
            return len(path.read_text().splitlines()) if path.exists() else 0

        wait_for(lambda: finished() >= 500, worker, 120, "500 tasks before the restart")
        down = time.monotonic()
        private_mariadb.stop()
        time.sleep(2)
        private_mariadb.start()
        downtime = time.monotonic() - down

        def stored() -> int:
            return int(scalar(url, "SELECT COUNT(*) FROM celery_taskmeta WHERE status = 'SUCCESS'"))

        wait_for(lambda: stored() >= len(ids), worker, 300, "every result after the restart")
        elapsed = time.monotonic() - started
        answers = healthy_processes(app, worker)
        app.close()
        assert worker.process.poll() is None  # the same worker carried on
        task_retries = worker.output.count("retry: Retry in")
        store_retries = worker.output.count("Failed operation _store_result")
    # The restart was felt: storing results (each retry logged by celery_sa's backend on
    # every Celery, by Celery's from 5.7 on) or the tasks' own writes had to wait for it.
    assert store_retries + task_retries > 0
    assert all(answer["checked_out"] == 0 for answer in answers.values()), answers
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        succeeded = connection.execute(
            text("SELECT task_id FROM celery_taskmeta WHERE status = 'SUCCESS'")
        ).scalars()
        assert set(ids) <= set(succeeded)
    engine.dispose()
    assert scalar(url, "SELECT COUNT(*) FROM reliability_rows") == len(keys)
    assert scalar(url, "SELECT COUNT(DISTINCT `key`) FROM reliability_rows") == len(keys)
    record(
        f"database restart ({backend}+)",
        {
            "tasks": len(keys),
            "restart_seconds": round(downtime, 1),
            "task_retries": task_retries,
            "result_store_retries": store_retries,
            "total_seconds": round(elapsed, 1),
        },
    )


# --- a pool child killed mid-transaction ----------------------------------------------


@dataclass(frozen=True)
class KilledChildren:
    """Two tasks whose pool children were killed while each held a transaction open."""

    states: list[str]
    outcomes: list[Any]
    parts: str | None
    """The rows the two tasks committed, ``key`` and part, e.g. ``"lefta,leftb"``."""


def kill_children_holding_transactions(
    tmp_path: Path, variables: dict[str, str], scenario: str
) -> KilledChildren:
    """Run two two-part tasks, kill -9 both pool children between the parts (part a
    written, not committed), and wait for what becomes of the tasks."""
    broker = service_url("redis")
    markers = tmp_path / "markers"
    markers.mkdir()
    with fresh_result_db("mysqlclient") as results:
        root = sqlalchemy_root()
        engine = create_engine(root, poolclass=NullPool)
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        engine.dispose()
        with running_worker(
            tmp_path,
            result_url=results.url,
            broker_url=broker,
            concurrency=PROCESSES,
            CELERY_SA_DATABASE_URL=root,
            **variables,
        ) as worker:
            app = producer(broker, results.url)
            sent = [
                app.send_task(
                    "tests.support.worker_tasks.two_parts", (key, str(markers)), queue=worker.queue
                )
                for key in ("left", "right")
            ]
            wait_for(
                lambda: len([m for m in markers.iterdir() if m.suffix != ".tmp"]) >= 2,
                worker,
                60,
                "two tasks holding their transactions",
            )
            holders = [
                tuple(int(v) for v in (markers / key).read_text().split())
                for key in ("left", "right")
            ]
            connection_ids = tuple(connection for _, connection in holders)
            assert open_transactions(connection_ids) == 2  # part a written, not committed
            killed = time.monotonic()
            for pid, _ in holders:
                os.kill(pid, signal.SIGKILL)
            # The server sees the connections close and rolls their transactions back.
            wait_for(lambda: open_transactions(connection_ids) == 0, worker, 30, "rollback")
            rolled_back = time.monotonic() - killed
            outcomes = [result.get(timeout=60, propagate=False) for result in sent]
            finished = time.monotonic() - killed
            states = [result.state for result in sent]
            app.close()
        parts = scalar(
            root,
            "SELECT GROUP_CONCAT(CONCAT(`key`, part) ORDER BY `key`, part) FROM reliability_rows",
        )
    record(
        f"killed pool children, {scenario}",
        {
            "killed_with_open_transactions": len(holders),
            "rolled_back_within_seconds": round(rolled_back, 2),
            "tasks_succeeded": states.count("SUCCESS"),
            "seconds_from_kill_to_results": round(finished, 2),
        },
    )
    return KilledChildren(states=states, outcomes=outcomes, parts=parts)


@pytest.mark.services("mysql")
def test_a_killed_pool_child_rolls_back_and_with_late_acks_its_task_runs_again(
    tmp_path: Path,
) -> None:
    killed = kill_children_holding_transactions(tmp_path, PRODUCTION, "recommended")
    assert killed.states == ["SUCCESS", "SUCCESS"], killed.outcomes
    assert killed.parts == "lefta,leftb,righta,rightb"  # both parts, once each


@pytest.mark.services("mysql")
def test_with_celerys_default_acks_a_killed_pool_child_loses_its_task_and_writes_nothing(
    tmp_path: Path,
) -> None:
    defaults = {name: value for name, value in PRODUCTION.items() if name not in REDELIVERY}
    killed = kill_children_holding_transactions(tmp_path, defaults, "celery defaults")
    # Acknowledged before running: the task is lost, and nothing half-written stays.
    assert killed.states == ["FAILURE", "FAILURE"]
    assert all("WorkerLostError" in repr(outcome) for outcome in killed.outcomes), killed.outcomes
    assert killed.parts is None


def sqlalchemy_root() -> str:
    return (
        make_url(service_url("mysql"))
        .set(database=TEST_DATABASE)
        .render_as_string(hide_password=False)
    )


def open_transactions(connection_ids: tuple[int, ...]) -> int:
    with connections["mysql"].cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id IN %s",
            [connection_ids],
        )
        return int(cursor.fetchone()[0])


# --- sustained load, with the admin read meanwhile ------------------------------------


@pytest.mark.load
@pytest.mark.parametrize(
    "database",
    [result_db_param("mysqlclient"), result_db_param("postgresql")],
)
def test_a_sustained_load_stays_within_the_connection_budget_and_the_admin_keeps_answering(
    database: str, tmp_path: Path, admin_client: Client
) -> None:
    broker = service_url("redis")
    with fresh_result_db(database) as results, load_user(results.alias) as as_user:
        engine = create_engine(results.url.removeprefix("db+"), poolclass=NullPool)
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        engine.dispose()
        grant_tables(results.alias)
        user_url = as_user(results.url.removeprefix("db+"))
        tasks = LOAD_TASKS
        peak, admin_ms = 0, []
        changelist = reverse("admin:celery_sa_taskresult_changelist")
        with running_worker(
            tmp_path,
            result_url=f"db+{user_url}",
            broker_url=broker,
            concurrency=PROCESSES,
            CELERY_SA_DATABASE_URL=user_url,
            **PRODUCTION,
        ) as worker:
            app = producer(broker, results.url)
            started = time.monotonic()
            for n in range(tasks):
                app.send_task(
                    "tests.support.worker_tasks.store_once", (f"load{n}",), queue=worker.queue
                )

            asked = 0.0

            def done() -> bool:
                nonlocal peak, asked
                peak = max(peak, user_connections(results.alias))
                # The admin's list every second, as a person refreshing it would (each
                # render costs this process the CPU the worker needs).
                if time.monotonic() - asked >= ADMIN_EVERY:
                    asked = time.monotonic()
                    response = admin_client.get(changelist)
                    admin_ms.append((time.monotonic() - asked) * 1000)
                    assert response.status_code == 200
                return count_successes(results.alias) >= tasks

            wait_for(done, worker, 600, f"{tasks} results")
            elapsed = time.monotonic() - started
            answers = healthy_processes(app, worker)
            app.close()
        after = user_connections(results.alias)
        rows = scalar(results.url.removeprefix("db+"), "SELECT COUNT(*) FROM reliability_rows")
    assert all(answer["checked_out"] == 0 for answer in answers.values()), answers
    assert 0 < peak <= BUDGET, (peak, BUDGET)
    assert after == 0
    assert rows == tasks
    admin_ms.sort()
    figures = {
        "tasks": tasks,
        "tasks_per_second": round(tasks / elapsed, 1),
        "peak_connections": peak,
        "connection_budget": BUDGET,
        "connections_after": after,
        "admin_requests": len(admin_ms),
        "admin_median_ms": round(statistics.median(admin_ms), 1),
        "admin_p99_ms": round(admin_ms[min(len(admin_ms) - 1, int(len(admin_ms) * 0.99))], 1),
    }
    record(f"sustained load, {database}", figures)


def count_successes(alias: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
        return int(cursor.fetchone()[0])


def user_connections(alias: str) -> int:
    connection = connections[alias]
    sql = (
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s"
        if connection.vendor == "mysql"
        else "SELECT COUNT(*) FROM pg_stat_activity WHERE usename = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [LOAD_USER])
        return int(cursor.fetchone()[0])


@contextmanager
def load_user(alias: str) -> Iterator[Callable[[str], str]]:
    """A database user of its own for the worker, so its connections can be counted;
    yields what turns a URL into that user's."""
    connection = connections[alias]
    drop_load_user(alias)
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(f"CREATE USER '{LOAD_USER}'@'%' IDENTIFIED BY 'load'")
            name = connection.settings_dict["NAME"]
            cursor.execute(f"GRANT ALL ON `{name}`.* TO '{LOAD_USER}'@'%'")
        else:
            cursor.execute(f"CREATE ROLE {LOAD_USER} LOGIN PASSWORD 'load'")
    try:
        yield (
            lambda url: (
                make_url(url)
                .set(username=LOAD_USER, password="load")
                .render_as_string(hide_password=False)
            )
        )
    finally:
        drop_load_user(alias)


def drop_load_user(alias: str) -> None:
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(f"DROP USER IF EXISTS '{LOAD_USER}'@'%'")
            return
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [LOAD_USER])
        if cursor.fetchone():
            cursor.execute(f"DROP OWNED BY {LOAD_USER}")
            cursor.execute(f"DROP ROLE {LOAD_USER}")


def grant_tables(alias: str) -> None:
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {LOAD_USER}")
            cursor.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {LOAD_USER}")
            cursor.execute(f"GRANT ALL ON SCHEMA public TO {LOAD_USER}")
