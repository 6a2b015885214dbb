"""celery_sa's result backend (``celery_sa+…``) with real workers on Redis, on MariaDB
(mysqlclient and PyMySQL), PostgreSQL and SQLite: the rows it writes, what it reads back,
groups, chains and native chords."""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery import Celery, chain, chord, current_app, group
from celery.app.task import Context
from celery.exceptions import (
    BackendGetMetaError,
    BackendStoreError,
    ChordError,
    ImproperlyConfigured,
)
from django.test import Client
from django.urls import reverse
from sqlalchemy import event, insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from celery_sa.backend import DatabaseBackend
from celery_sa.backend.store import dispose_stores
from celery_sa.conf import configured_tables
from celery_sa.models import GroupMember, GroupResult, TaskAttempt, TaskResult
from tests.support.chords import chord_request, chord_rows
from tests.support.databases import RESULT_DBS, ResultDB, fresh_result_db
from tests.support.rows import ago
from tests.support.services import service_url
from tests.support.tables import load_legacy
from tests.support.workers import Worker, producer, running_worker

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

TASKS = "tests.support.backend_tasks"
DATABASES = [
    pytest.param(name, marks=pytest.mark.services(*filter(None, [RESULT_DBS[name][0]]), "redis"))
    for name in ("sqlite", "mysqlclient", "pymysql", "postgresql")
]


def ours(url: str) -> str:
    """The same database behind celery_sa's backend instead of Celery's."""
    return "celery_sa+" + url.removeprefix("db+")


@dataclass
class Setup:
    results: ResultDB
    broker: str
    tmp_path: Path

    @property
    def url(self) -> str:
        return ours(self.results.url)

    def started(self) -> list[tuple[str, str]]:
        """(task id, task name) of every execution that started, over every worker."""
        path = self.tmp_path / "runs.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [(task_id, name) for task_id, name, _pid in (line.split() for line in lines)]

    def runs(self) -> Counter[str]:
        """How often each task name started."""
        return Counter(name for _, name in self.started())

    def runs_of(self, task_id: str) -> int:
        return sum(1 for started_id, _ in self.started() if started_id == task_id)

    @contextmanager
    def worker(self, result_url: str | None = None, **variables: str) -> Iterator[Worker]:
        with running_worker(
            self.tmp_path,
            result_url=result_url or self.url,
            broker_url=self.broker,
            CELERY_IMPORTS=f"{TASKS},tests.support.worker_tasks",
            CELERY_SA_TEST_RUNS_FILE=str(self.tmp_path / "runs.log"),
            **variables,
        ) as worker:
            yield worker

    @contextmanager
    def client(self, worker: Worker, result_url: str | None = None) -> Iterator[Celery]:
        app = producer(self.broker, result_url or self.url)
        app.conf.task_default_queue = worker.queue
        try:
            yield app
        finally:
            app.close()


@pytest.fixture(params=DATABASES)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    with fresh_result_db(request.param) as results:
        try:
            yield Setup(results=results, broker=service_url("redis"), tmp_path=tmp_path)
        finally:
            dispose_stores()  # the clients' pooled connections, before the tables go


def sig(app: Celery, name: str, *args: Any) -> Any:
    return app.signature(f"{TASKS}.{name}", args)


def wait_until(condition: Any, worker: Worker, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline and worker.process.poll() is None, worker.output
        time.sleep(0.1)


def test_a_worker_stores_states_start_times_retries_and_revokes(
    setup: Setup, admin_client: Client
) -> None:
    with setup.worker() as worker, setup.client(worker) as app:
        assert isinstance(app.backend, DatabaseBackend)
        ok = sig(app, "nap", 0.2, "slept").delay()
        bad = sig(app, "fail", "boom").delay()
        flaky = app.signature("project.tasks.flaky", (2,)).delay()
        later = app.signature("tests.support.worker_tasks.retry_later", (3,)).delay()
        assert ok.get(timeout=30) == "slept"
        with pytest.raises(ValueError, match="boom"):
            bad.get(timeout=30)
        assert flaky.get(timeout=30) == "succeeded on attempt 2"
        wait_until(lambda: later.state == "RETRY", worker)
        app.control.revoke(later.id)
        wait_until(lambda: later.state == "REVOKED", worker)

    rows = {row.task_id: row for row in TaskResult.objects.all()}
    assert rows[ok.id].status == "SUCCESS"
    assert rows[ok.id].name == f"{TASKS}.nap"
    assert rows[ok.id].worker and rows[ok.id].worker.startswith(worker.queue)
    assert rows[ok.id].args == b'[0.2, "slept"]'
    runtime = (rows[ok.id].date_done - rows[ok.id].started).total_seconds()  # type: ignore[operator]
    assert 0.2 <= runtime < 5
    assert rows[bad.id].status == "FAILURE"
    assert "ValueError: boom" in (rows[bad.id].traceback or "")
    assert (rows[flaky.id].status, rows[flaky.id].retries) == ("SUCCESS", 1)
    assert rows[later.id].status == "REVOKED"
    page = admin_client.get(
        reverse("admin:celery_sa_taskresult_change", args=[rows[ok.id].pk])
    ).content.decode()
    assert re.search(r"<div class=\"readonly\">\d\.\d{3} s</div>", page), "no runtime shown"


def test_a_success_is_never_overwritten_and_forget_deletes_the_row(setup: Setup) -> None:
    with setup.worker() as worker, setup.client(worker) as app:
        done = sig(app, "add", 2, 3).delay()
        assert done.get(timeout=30) == 5
        # A redelivered task's rerun that fails must not replace the stored SUCCESS.
        app.backend.store_result(done.id, ValueError("late"), "FAILURE")
        assert app.backend.get_task_meta(done.id, cache=False)["result"] == 5
        done.forget()
    assert not TaskResult.objects.filter(task_id=done.id).exists()


def test_threads_of_a_web_process_share_a_pool_sized_by_celerys_engine_options(
    setup: Setup,
) -> None:
    app = producer(setup.broker, setup.url)
    app.conf.database_engine_options = {"pool_size": 3, "max_overflow": 0, "pool_timeout": 30}
    try:
        for n in range(20):
            app.backend.store_result(f"r{n}", n, "SUCCESS")
        engine = app.backend.store.engine
        assert engine.pool.size() == 3  # type: ignore[attr-defined]
        connects: list[object] = []
        event.listen(engine.pool, "connect", lambda *args: connects.append(args))

        def read() -> None:
            for n in range(20):
                assert app.backend.get_task_meta(f"r{n}", cache=False)["result"] == n

        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(connects) <= 3  # 160 reads; Celery's backend opens a connection for each
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        app.close()


def test_groups_are_read_in_one_query_saved_restored_and_deleted(setup: Setup) -> None:
    with setup.worker() as worker, setup.client(worker) as app:
        members = group(sig(app, "add", i, i) for i in range(50)).delay()
        members.save()
        wait_until(lambda: members.ready(), worker)
    fresh = producer(setup.broker, setup.url)  # a new client: nothing cached
    # Celery before 5.7 pickles a group's members, which come back bound to the current app.
    previous = current_app._get_current_object()
    fresh.set_current()
    try:
        restored = fresh.GroupResult.restore(members.id)
        statements: list[str] = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(Engine, "before_cursor_execute", listener)  # any engine at all
        try:
            assert restored.get(timeout=10) == [i + i for i in range(50)]
        finally:
            event.remove(Engine, "before_cursor_execute", listener)
        assert len(statements) == 1, statements  # every member, one SELECT
        assert [v for _, v in restored.iter_native(timeout=10)]  # ResultSet.iter_native too
        # Its tasks are rows of their own, in order (the admin's group filters read them).
        rows = GroupMember.objects.filter(group_id=members.id).order_by("group_index")
        assert list(rows.values_list("task_id", flat=True)) == [r.id for r in members.results]
        members.save()  # saved again (as a chord's header is): nothing changes
        assert rows.count() == 50
        assert GroupResult.objects.filter(taskset_id=members.id).count() == 1
        restored.delete()
        assert fresh.GroupResult.restore(members.id) is None
        assert not rows.exists()
    finally:
        previous.set_current()
        fresh.close()


def test_chains_and_chords_run_without_chord_unlock(setup: Setup) -> None:
    with setup.worker(CELERY_TASK_TRACK_STARTED="true") as worker, setup.client(worker) as app:
        chained = chain(sig(app, "add", 1, 2), app.signature(f"{TASKS}.add", (10,))).delay()
        header = [sig(app, "add", i, 0) for i in range(10)]
        plain = chord(header, sig(app, "collect")).delay()
        nested_group = chord(
            [sig(app, "add", 1, 0), group(sig(app, "add", 2, 0), sig(app, "add", 3, 0))],
            sig(app, "total"),
        ).delay()
        in_header = chord(
            [
                chord([sig(app, "add", 1, 1), sig(app, "add", 2, 2)], sig(app, "total")),
                sig(app, "add", 5, 0),
            ],
            sig(app, "total"),
        ).delay()
        of_chords = chord(
            [chord([sig(app, "add", i, 0) for i in range(3)], sig(app, "total")) for _ in range(3)],
            sig(app, "collect"),
        ).delay()
        assert chained.get(timeout=30) == 13
        assert plain.get(timeout=30) == list(range(10))  # in header order
        assert nested_group.get(timeout=30) == 6
        assert in_header.get(timeout=30) == 11
        assert of_chords.get(timeout=30) == [3, 3, 3]
        callbacks = [plain.id, nested_group.id, in_header.id, of_chords.id]
        header = [result.id for result in plain.parent.results]
    assert all(setup.runs_of(task_id) == 1 for task_id in callbacks)
    # Each header is saved as a group, its tasks in order: the admin reads them.
    assert GroupResult.objects.filter(taskset_id=plain.parent.id).exists()
    members = GroupMember.objects.filter(group_id=plain.parent.id).order_by("group_index")
    assert list(members.values_list("task_id", flat=True)) == header
    assert setup.runs()["celery.chord_unlock"] == 0
    assert chord_rows() == (0, 0)  # finished counters are removed


def test_a_failed_header_task_fails_the_callback_with_a_chord_error(setup: Setup) -> None:
    with setup.worker() as worker, setup.client(worker) as app:
        # The failed part counted last, then a successful one after it.
        last = chord([sig(app, "add", 1, 1), sig(app, "fail", "header")], sig(app, "collect"))
        first = chord([sig(app, "fail", "header"), sig(app, "nap", 0.5, 1)], sig(app, "collect"))
        for result in (last.delay(), first.delay()):
            assert_chord_error(result, worker)
            assert setup.runs_of(result.id) == 0
            assert TaskResult.objects.get(task_id=result.id).status == "FAILURE"
    assert chord_rows() == (0, 0)


def assert_chord_error(result: Any, worker: Worker) -> None:
    """The callback failed with the ChordError that names the failed header task."""
    try:
        # The callback's own state (get() would raise the header's error first otherwise).
        result.get(timeout=30, follow_parents=False)
    except ChordError as exc:
        assert re.match(r"Dependency .* raised ValueError\('header'\)", str(exc))
    except Exception:
        pytest.fail(worker.output[-6000:])
    else:
        pytest.fail("no ChordError")


def test_cleanup_deletes_expired_results_and_stale_chord_counters(setup: Setup) -> None:
    app = producer(setup.broker, setup.url)
    app.conf.result_expires = 3600
    try:
        app.backend.store_result("old", 1, "SUCCESS")
        app.backend.store_result("new", 2, "SUCCESS")
        tables = configured_tables()
        with app.backend.store.engine.begin() as connection:
            connection.execute(
                tables.task.update()
                .where(tables.task.c.task_id == "old")
                .values(date_done=ago(hours=2))
            )
            connection.execute(
                insert(tables.chord), {"group_id": "lost", "date_created": ago(hours=2)}
            )
            connection.execute(
                insert(tables.chord), {"group_id": "busy", "date_created": ago(minutes=1)}
            )
            # An old retry of each: the one of the task that stays stays with it.
            connection.execute(
                insert(tables.attempt),
                [
                    {"task_id": task_id, "attempt": 0, "status": "RETRY", "date_done": ago(hours=2)}
                    for task_id in ("old", "new")
                ],
            )
        app.backend.cleanup()
    finally:
        app.close()
    assert sorted(TaskResult.objects.values_list("task_id", flat=True)) == ["new"]
    assert chord_rows() == (1, 0)
    assert list(TaskAttempt.objects.values_list("task_id", flat=True)) == ["new"]


# --- both backends on one table -----------------------------------------------------


COMPARED = (
    "status",
    "result",
    "traceback",
    "children",
    "name",
    "args",
    "kwargs",
    "retries",
)


def test_rows_of_both_backends_are_alike_and_each_reads_the_other(
    setup: Setup, admin_client: Client
) -> None:
    stock_url = setup.results.url
    ids: dict[str, list[str]] = {}
    for name, url in (("stock", stock_url), ("ours", setup.url)):
        with setup.worker(url) as worker, setup.client(worker, url) as app:
            results = [
                sig(app, "add", 2, 3).delay(),
                sig(app, "fail", "boom").delay(),
                app.signature(f"{TASKS}.collect", ([1, "two", None],)).delay(),
            ]
            for result in results:
                wait_until(result.ready, worker)
            ids[name] = [r.id for r in results]
    rows = {row.task_id: row for row in TaskResult.objects.all()}
    for stock_id, our_id in zip(ids["stock"], ids["ours"], strict=True):
        for column in COMPARED:
            stock_value, our_value = getattr(rows[stock_id], column), getattr(rows[our_id], column)
            if column == "traceback" and stock_value:  # the same exception, another process
                stock_value, our_value = stock_value.splitlines()[-1], our_value.splitlines()[-1]
            assert bytes_or(our_value) == bytes_or(stock_value), column
    # Each backend's client reads the other's rows.
    for url, other in ((stock_url, "ours"), (setup.url, "stock")):
        app = producer(setup.broker, url)
        try:
            assert app.AsyncResult(ids[other][0]).get(timeout=5) == 5
            assert app.AsyncResult(ids[other][2]).get(timeout=5) == [1, "two", None]
            with pytest.raises(ValueError, match="boom"):
                app.AsyncResult(ids[other][1]).get(timeout=5)
        finally:
            app.close()
    page = admin_client.get(reverse("admin:celery_sa_taskresult_changelist")).content.decode()
    assert all(task_id in page for task_id in ids["stock"] + ids["ours"])


@pytest.mark.services("mysql", "redis")
@pytest.mark.parametrize("setup", ["mysqlclient"], indirect=True)
def test_a_chord_sent_by_a_stock_client_finishes_on_celery_sa_workers_by_chord_unlock(
    setup: Setup,
) -> None:
    with setup.worker() as worker, setup.client(worker, setup.results.url) as app:
        result = chord([sig(app, "add", i, 0) for i in range(5)], sig(app, "total")).delay()
        assert result.get(timeout=60) == 10
    assert setup.runs()["celery.chord_unlock"] >= 1
    assert setup.runs_of(result.id) == 1
    assert chord_rows() == (0, 0)  # the parts were not ours to count


def bytes_or(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


# --- a worker without Django --------------------------------------------------------------


@pytest.mark.services("mysql", "redis")
@pytest.mark.parametrize("setup", ["pymysql"], indirect=True)
def test_a_worker_without_django_needs_only_the_backend_url(setup: Setup) -> None:
    with setup.worker(app="tests.support.plain_celery_app", DJANGO_SETTINGS_MODULE="") as worker:
        with setup.client(worker) as app:
            assert sig(app, "settings_configured").delay().get(timeout=30) is False
            header = [sig(app, "add", i, 1) for i in range(20)]
            assert chord(header, sig(app, "total")).delay().get(timeout=30) == 210
            members = group(sig(app, "add", i, i) for i in range(5)).delay()
            assert members.get(timeout=30) == [0, 2, 4, 6, 8]
    assert setup.runs()["celery.chord_unlock"] == 0
    assert TaskResult.objects.filter(name=f"{TASKS}.add").count() == 25


# --- exactly once --------------------------------------------------------------------


def test_the_callback_is_sent_once_when_parts_return_together_and_twice(setup: Setup) -> None:
    """Backend calls from threads, as header tasks finishing at the same instant on several
    workers make them: the last part stored and returned twice at once, or stored by a run
    killed before it returned and returned again by its redelivered run."""
    queue = f"callbacks-{uuid.uuid4().hex[:8]}"
    app = producer(setup.broker, setup.url)
    broker = redis.Redis.from_url(setup.broker)
    size, rounds = 4, 8
    try:
        backend = app.backend
        for round_ in range(rounds):
            group_id = str(uuid.uuid4())
            body = app.signature(f"{TASKS}.collect", queue=queue)
            body.freeze()
            header = [app.AsyncResult(f"{group_id}-{i}") for i in range(size)]
            backend.apply_chord((group_id, header), body)
            backend.set_chord_size(group_id, size)
            requests = [chord_request(group_id, i, body) for i in range(size)]
            if round_ % 2:  # killed after storing: the result is there, the part not counted
                backend.store_result(requests[-1].id, size - 1, "SUCCESS", request=requests[-1])
            calls = [*requests, requests[-1]]
            barrier = threading.Barrier(len(calls))

            def finish(request: Context, barrier: threading.Barrier) -> None:
                barrier.wait()
                backend.mark_as_done(request.id, request.group_index, request=request)

            threads = [threading.Thread(target=finish, args=(r, barrier)) for r in calls]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert broker.llen(queue) == round_ + 1, f"round {round_}"
        assert chord_rows() == (0, 0)
    finally:
        broker.delete(queue)
        broker.close()
        app.close()


@pytest.mark.services("mysql", "redis")
@pytest.mark.parametrize("setup", ["mysqlclient"], indirect=True)
def test_header_tasks_killed_mid_run_are_redelivered_and_the_callback_runs_once(
    setup: Setup,
) -> None:
    markers = setup.tmp_path / "markers"
    markers.mkdir()
    killed = (1, 5)  # 5 is the last part: its redelivery completes the chord
    with (
        setup.worker(
            CELERY_TASK_ACKS_LATE="true",
            CELERY_TASK_REJECT_ON_WORKER_LOST="true",
            CELERY_WORKER_PREFETCH_MULTIPLIER="1",
        ) as worker,
        setup.client(worker) as app,
    ):
        header = [
            sig(app, "killed_once", i, str(markers)) if i in killed else sig(app, "add", i, 0)
            for i in range(6)
        ]
        result = chord(header, sig(app, "collect")).delay()
        for value in killed:
            marker = markers / str(value)
            wait_until(marker.exists, worker)
            os.kill(int(marker.read_text()), signal.SIGKILL)
        assert result.get(timeout=60) == list(range(6))
        assert "WorkerLostError" in worker.output or "Process" in worker.output
    assert setup.runs_of(result.id) == 1
    assert setup.runs()[f"{TASKS}.killed_once"] == 4  # each killed part ran twice
    assert chord_rows() == (0, 0)


@pytest.mark.parametrize(
    "setup", [p for p in DATABASES if p.values[0] in ("mysqlclient", "postgresql")], indirect=True
)
def test_tables_celery_4_made_work_before_any_upgrade(setup: Setup) -> None:
    """No children, stamps or date_started column, INT ids: results, groups and chords all
    work; the chord counter's tables are created on first use."""
    load_legacy(setup.results, "4.4.7")
    with setup.worker(CELERY_TASK_TRACK_STARTED="true") as worker, setup.client(worker) as app:
        assert sig(app, "add", 2, 3).delay().get(timeout=30) == 5
        with pytest.raises(ValueError, match="boom"):
            sig(app, "fail", "boom").delay().get(timeout=30)
        members = group(sig(app, "add", i, i) for i in range(5)).delay()
        assert members.get(timeout=30) == [0, 2, 4, 6, 8]
        header = [sig(app, "add", i, 0) for i in range(5)]
        assert chord(header, sig(app, "collect")).delay().get(timeout=30) == list(range(5))
    assert (
        "celery_taskmeta lacks date_started and date_sent: start times and sent times are not kept"
        in worker.output
    )
    assert chord_rows() == (0, 0)


@pytest.mark.slow
def test_retries_last_as_long_as_the_retry_timeout_not_a_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failover takes 30 to 120 s: the backend retries for sa_backend_retry_timeout
    (CELERY_SA_BACKEND_RETRY_TIMEOUT) seconds, however many tries that takes, the last wait
    cut to the time left; waits are capped at 1 s unless Celery's own cap is set."""
    app = Celery(set_as_current=False)
    app.conf.result_backend = f"celery_sa+sqlite:///{tmp_path}/no/such/dir/results.sqlite"
    app.conf.database_create_tables_at_setup = False
    try:
        backend = app.backend
        assert (backend.retry_timeout, backend.retry_limit) == (120.0, math.inf)
        assert backend.max_sleep_between_retries_ms == 1000
        app.conf.sa_backend_retry_timeout = 1.5
        app.conf.result_backend_max_sleep_between_retries_ms = 200
        backend = DatabaseBackend(app=app, url=backend.url)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="celery_sa.backend.backend"):
            with pytest.raises(BackendStoreError):
                backend.store_result("t1", 1, "SUCCESS")
        elapsed = time.monotonic() - started
        assert 1.5 <= elapsed < 2.5, elapsed
        assert len(caplog.records) > 7  # waits of at most 0.2 s over 1.5 s
        with caplog.at_level(logging.WARNING, logger="celery_sa.backend.backend"):
            with pytest.raises(BackendGetMetaError):
                backend.get_task_meta("t2")
        app.conf.sa_backend_retry_timeout = "soon"
        with pytest.raises(ImproperlyConfigured, match="sa_backend_retry_timeout must be"):
            DatabaseBackend(app=app, url=backend.url)
    finally:
        app.close()
        dispose_stores()


def test_django_settings_name_the_retry_timeout_celery_sa_backend_retry_timeout(
    tmp_path: Path,
) -> None:
    settings = SimpleNamespace(
        CELERY_RESULT_BACKEND=f"celery_sa+sqlite:///{tmp_path}/results.sqlite",
        CELERY_SA_BACKEND_RETRY_TIMEOUT=timedelta(minutes=3),
    )
    app = Celery(set_as_current=False)
    app.config_from_object(settings, namespace="CELERY")  # as a Django project's app does
    try:
        assert app.backend.retry_timeout == 180.0
    finally:
        app.close()
        dispose_stores()


def test_a_store_the_database_refuses_is_retried_with_a_warning_each_time_then_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On every Celery version (5.5 and 5.6 retry a store silently): each retry is logged
    as Celery 5.7 logs it, the last failure is Celery's BackendStoreError, and with
    ``result_backend_always_retry`` off the database's error comes at once."""
    app = Celery(set_as_current=False)
    app.conf.result_backend = f"celery_sa+sqlite:///{tmp_path}/no/such/dir/results.sqlite"
    app.conf.result_backend_max_retries = 2
    app.conf.result_backend_base_sleep_between_retries_ms = 1
    app.conf.database_create_tables_at_setup = False  # else the backend connects at once
    try:
        with caplog.at_level(logging.WARNING, logger="celery_sa.backend.backend"):
            with pytest.raises(BackendStoreError) as raised:
                app.backend.store_result("t1", 1, "SUCCESS")
        assert (raised.value.task_id, raised.value.state) == ("t1", "SUCCESS")
        assert isinstance(raised.value.__cause__, OperationalError)
        # The user's result_backend_max_retries: two retries, each wait logged, the
        # traceback with the first only.
        waits = [record.getMessage() for record in caplog.records]
        assert len(waits) == 2, waits
        for number, wait in enumerate(waits, 1):
            assert re.fullmatch(
                rf"Failed operation _store_result\. Retrying in 0\.0\d s \(retry {number}, "
                r"1[12]\d s left\): OperationalError: \(sqlite3\.OperationalError\) unable to "
                r"open database file .*",
                wait,
            ), wait
        assert [bool(record.exc_info) for record in caplog.records] == [True, False]
        caplog.clear()
        app.conf.result_backend_always_retry = False
        with pytest.raises(OperationalError, match="unable to open database file"):
            DatabaseBackend(app=app, url=app.backend.url).store_result("t2", 2, "SUCCESS")
        assert caplog.records == []
    finally:
        app.close()
        dispose_stores()
