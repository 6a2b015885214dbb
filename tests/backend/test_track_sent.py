"""CELERY_SA_TRACK_SENT's edges, in this process (a memory broker, a SQLite result file):
what publishing writes, and what it never does. A real worker's run of a queued task is in
test_lifecycle.py."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import create_engine, text

from celery_sa.backend.store import dispose_stores


def make_app(url: str, track_sent: bool = True) -> Celery:
    app = Celery("publisher", broker="memory://", backend=url, set_as_current=False)
    app.conf.result_extended = True
    app.conf.sa_track_sent = track_sent
    return app


@pytest.fixture
def results(tmp_path: Path) -> Iterator[str]:
    """A SQLite result file: celery_sa's backend URL."""
    yield f"celery_sa+sqlite:///{tmp_path / 'results.sqlite3'}"
    dispose_stores()


def rows(url: str) -> list[tuple[str, str | None]]:
    engine = create_engine(url.removeprefix("celery_sa+"))
    try:
        with engine.connect() as connection:
            query = text("SELECT task_id, status FROM celery_taskmeta ORDER BY id")
            return [tuple(row) for row in connection.execute(query)]  # type: ignore[misc]
    finally:
        engine.dispose()


def test_off_by_default_and_on_a_pending_row_per_task(results: str) -> None:
    quiet = make_app(results, track_sent=False)
    quiet.send_task("app.tasks.add", (1, 2))
    assert rows(results) == []
    tracked = make_app(results)
    sent = tracked.send_task("app.tasks.add", (1, 2))
    assert rows(results) == [(sent.id, "PENDING")]


def test_a_task_that_ignores_its_result_writes_no_row(results: str) -> None:
    make_app(results).send_task("app.tasks.add", (1, 2), ignore_result=True)
    assert rows(results) == []


def test_a_row_never_goes_back_to_pending(results: str) -> None:
    app = make_app(results)
    first = app.send_task("app.tasks.add", (1, 2))
    app.backend.store_result(first.id, 3, "SUCCESS")
    app.send_task("app.tasks.add", (1, 2), task_id=first.id)  # sent again: a re-run
    assert rows(results) == [(first.id, "SUCCESS")]


def test_a_database_that_does_not_answer_costs_the_row_not_the_task(
    results: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The result file locked by another connection past the driver's 0.2 s timeout."""
    app = make_app(results)
    app.conf.database_engine_options = {"connect_args": {"timeout": 0.2}}
    _ = app.backend.store  # the tables exist: the database answered once
    locker = create_engine(results.removeprefix("celery_sa+"))
    with locker.connect() as connection:
        connection.exec_driver_sql("BEGIN EXCLUSIVE")
        with caplog.at_level(logging.WARNING, logger="celery_sa.backend.pending"):
            sent = app.send_task("app.tasks.add", (1, 2), queue="work")
        connection.exec_driver_sql("ROLLBACK")
    locker.dispose()
    [warning] = caplog.records
    assert warning.getMessage() == (
        f"Task app.tasks.add[{sent.id}] was sent without its PENDING row: OperationalError"
    )
    with app.connection_for_read() as broker:
        message = broker.SimpleQueue("work").get(timeout=5)
        assert message.headers["id"] == sent.id
    assert rows(results) == []


def test_with_a_delay_rows_are_written_together_by_a_thread(results: str) -> None:
    app = make_app(results)
    app.conf.sa_track_sent_delay = 0.05
    sent = [app.send_task("app.tasks.add", (n, 1)).id for n in range(3)]
    deadline = time.monotonic() + 10
    while len(rows(results)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(rows(results)) == sorted((task_id, "PENDING") for task_id in sent)


def test_rows_still_waiting_are_written_when_the_process_exits(tmp_path: Path) -> None:
    """A publisher with a 60 s delay publishes and exits at once: its rows are written."""
    url = f"celery_sa+sqlite:///{tmp_path / 'results.sqlite3'}"
    script = (
        "import sys\n"
        "from celery import Celery\n"
        "app = Celery('publisher', broker='memory://', backend=sys.argv[1])\n"
        "app.conf.update(sa_track_sent=True, sa_track_sent_delay=60)\n"
        "print(app.send_task('app.tasks.add', (1, 2)).id)\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, text=True, check=True
    )
    assert time.monotonic() - started < 30
    assert rows(url) == [(done.stdout.strip(), "PENDING")]
