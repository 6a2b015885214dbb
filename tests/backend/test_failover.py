"""When the result database fails for longer than a write takes: nothing acked that was not
stored (a requeue under late acks, on every pool), and chords that cannot get stuck (a
claim whose commit failed, a complete chord nobody claimed, a claimant lost)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery, chord
from celery.exceptions import ImproperlyConfigured
from sqlalchemy import MetaData, Table, select, update
from sqlalchemy.exc import OperationalError

from celery_sa.backend import chords
from celery_sa.backend.retries import one_line
from celery_sa.backend.store import dispose_stores
from celery_sa.backend.sweep import STALE, sweep
from tests.support.chords import chord_request, chord_rows
from tests.support.databases import RESULT_DBS, fresh_result_db
from tests.support.services import service_url
from tests.support.workers import producer, running_worker

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

TASKS = "tests.support.backend_tasks"
NEW_COLUMNS = ("claimed_by", "callback")  # celery_sa 0.4's
DATABASES = [
    pytest.param(name, marks=pytest.mark.services(*filter(None, [RESULT_DBS[name][0]]), "redis"))
    for name in ("sqlite", "mysqlclient", "postgresql")
]


@pytest.fixture(params=DATABASES)
def app(request: pytest.FixtureRequest) -> Iterator[Celery]:
    """A client of celery_sa's backend on a fresh result database."""
    with fresh_result_db(request.param) as results:
        client = producer(service_url("redis"), "celery_sa+" + results.url.removeprefix("db+"))
        try:
            yield client
        finally:
            client.close()
            dispose_stores()


@pytest.fixture
def callbacks() -> Iterator[tuple[str, redis.Redis[bytes]]]:
    """A queue no worker consumes: the callbacks sent to it are counted there."""
    queue = f"callbacks-{uuid.uuid4().hex[:8]}"
    broker = redis.Redis.from_url(service_url("redis"))
    try:
        yield queue, broker
    finally:
        broker.delete(queue)
        broker.close()


def started_chord(app: Celery, queue: str, size: int) -> tuple[str, Any, list[Any]]:
    """A chord registered and sized as Celery does before sending its header; its header
    tasks' requests, each with its result stored."""
    group_id = str(uuid.uuid4())
    body = app.signature(f"{TASKS}.collect", queue=queue)
    body.freeze()
    header = [app.AsyncResult(f"{group_id}-{i}") for i in range(size)]
    app.backend.apply_chord((group_id, header), body)
    app.backend.set_chord_size(group_id, size)
    requests = [chord_request(group_id, i, body) for i in range(size)]
    for request in requests:
        app.backend.store_result(request.id, request.group_index, "SUCCESS", request=request)
    return group_id, body, requests


def counted_unclaimed(app: Celery, group_id: str, requests: list[Any]) -> None:
    """Each header task's stored result counted its part in the same write, and nobody
    claimed the chord: as when the last part's process is lost right after its store."""
    store = app.backend.store
    part, chord_table = store.tables.part, store.tables.chord
    with store.engine.connect() as connection:
        parts = connection.execute(select(part.c.task_id).where(part.c.group_id == group_id))
        fired = connection.execute(
            select(chord_table.c.date_fired).where(chord_table.c.group_id == group_id)
        ).scalar_one()
        assert set(parts.scalars()) == {request.id for request in requests}
    assert fired is None


@pytest.mark.parametrize("claimant", ["last-part", "sweep"])
@pytest.mark.parametrize("committed", [True, False], ids=["committed", "rolled-back"])
def test_a_claim_whose_commit_failed_is_retried_and_the_callback_sent_once(
    app: Celery,
    callbacks: tuple[str, redis.Redis[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    committed: bool,
    claimant: str,
) -> None:
    """The connection lost at the claim's commit: it may have happened or not. The retry
    finds the claim its own (``claimed_by``) or takes it: one callback either way, whether
    the last part claims or the sweep does (its parts all recorded, nobody claiming)."""
    queue, broker = callbacks
    app.conf.sa_backend_retry_timeout = 10
    group_id, body, requests = started_chord(app, queue, 3)
    claimed = chords.Claim._claimed
    failures = []

    def lost_at_commit(self: chords.Claim, store: Any) -> bool:
        if not failures:
            failures.append(self.group_id)
            if committed:
                claimed(self, store)
            raise OperationalError("COMMIT", {}, Exception("Lost connection to server"))
        return claimed(self, store)

    monkeypatch.setattr(chords.Claim, "_claimed", lost_at_commit)
    if claimant == "sweep":
        counted_unclaimed(app, group_id, requests)
        assert sweep(app.backend).fired == 1
    else:
        for request in requests:
            app.backend.mark_as_done(request.id, request.group_index, request=request)
    assert failures == [group_id]
    assert broker.llen(queue) == 1
    assert chord_rows() == (0, 0)
    assert app.AsyncResult(body.id).state == "PENDING"  # sent, not run: no worker there


def test_a_claimant_requeued_after_its_claim_does_not_send_the_callback_again(
    app: Celery,
    callbacks: tuple[str, redis.Redis[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The last part's claim commits, but every answer is lost until the budget runs out:
    the run fails (a worker requeues it) with the chord claimed and nothing sent. Its next
    run cannot tell that run from one still sending (a duplicate delivery): it sends
    nothing and says so; the sweep reports the chord (a limitation the guide describes)."""
    queue, broker = callbacks
    app.conf.sa_backend_retry_timeout = 0.3
    group_id, body, requests = started_chord(app, queue, 2)
    take, claimed = chords.Claim.take, chords.Claim._claimed
    lost = OperationalError("COMMIT", {}, Exception("Lost connection to server"))

    def answer_lost(self: chords.Claim, store: Any) -> bool:
        claimed(self, store)
        raise lost

    def down_after_the_claim(self: chords.Claim, *args: Any, **kwargs: Any) -> bool:
        if self.tried:
            raise lost
        return take(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(chords.Claim, "_claimed", answer_lost)
        patch.setattr(chords.Claim, "take", down_after_the_claim)
        with pytest.raises(OperationalError):
            app.backend.mark_as_done(requests[1].id, 1, request=requests[1])
    assert broker.llen(queue) == 0
    assert chord_rows() == (1, 2)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="celery_sa.backend.chords"):
        app.backend.mark_as_done(requests[1].id, 1, request=requests[1])
    assert broker.llen(queue) == 0
    assert chord_rows() == (1, 2)
    assert [r.getMessage() for r in caplog.records] == [
        f"Chord {group_id!r} was claimed by another run of {requests[1].id}: its callback "
        "is not sent again"
    ]
    assert app.AsyncResult(body.id).state == "PENDING"


def test_a_claimant_run_again_after_its_callback_ran_forgets_the_chord_and_sends_nothing(
    app: Celery, callbacks: tuple[str, redis.Redis[bytes]]
) -> None:
    """A claimant lost after it sent the callback (which has run since) and redelivered:
    the chord is forgotten, the callback not sent again."""
    queue, broker = callbacks
    store = app.backend.store
    group_id, body, requests = started_chord(app, queue, 2)
    counted_unclaimed(app, group_id, requests)
    with store.engine.begin() as connection:
        connection.execute(
            update(store.tables.chord)
            .where(store.tables.chord.c.group_id == group_id)
            .values(date_fired=chords.utcnow(), claimed_by=requests[-1].id)
        )
    app.backend.store_result(body.id, [0, 1], "SUCCESS")
    app.backend.mark_as_done(requests[-1].id, 1, request=requests[-1])
    assert broker.llen(queue) == 0
    assert chord_rows() == (0, 0)


def test_a_sent_callback_is_never_a_reason_to_run_its_claimant_again(
    app: Celery,
    callbacks: tuple[str, redis.Redis[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database goes away for longer than the budget between sending the callback and
    forgetting the chord: the part returns without an error (no requeue, no second run)
    and the claimed counter is left to the sweep."""
    queue, broker = callbacks
    app.conf.sa_backend_retry_timeout = 0.3
    group_id, _, requests = started_chord(app, queue, 2)

    lost = OperationalError("DELETE", {}, Exception("Lost connection to server"))

    def gone(store: Any, group_id: str) -> None:
        raise lost

    monkeypatch.setattr(chords, "forget", gone)
    for request in requests:
        with caplog.at_level(logging.WARNING, logger="celery_sa.backend.chords"):
            app.backend.mark_as_done(request.id, request.group_index, request=request)
    assert broker.llen(queue) == 1
    assert chord_rows() == (1, 2)
    assert [r.getMessage() for r in caplog.records if r.name == "celery_sa.backend.chords"] == [
        f"Chord {group_id!r}: its callback is sent; forgetting the chord failed "
        f"({one_line(lost)}), the sweep will"
    ]


def test_the_sweep_sends_a_complete_chord_nobody_claimed_once(
    app: Celery, callbacks: tuple[str, redis.Redis[bytes]]
) -> None:
    """Three workers sweep at the same instant while the last part returns: one sends."""
    queue, broker = callbacks
    group_id, _, requests = started_chord(app, queue, 4)
    counted_unclaimed(app, group_id, requests)
    barrier = threading.Barrier(4)
    swept: list[int] = []

    def sweeping() -> None:
        barrier.wait()
        swept.append(sweep(app.backend).fired)

    def returning() -> None:
        barrier.wait()
        app.backend.on_chord_part_return(requests[-1], "SUCCESS", 3)

    threads = [threading.Thread(target=sweeping) for _ in range(3)]
    threads.append(threading.Thread(target=returning))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert broker.llen(queue) == 1
    assert sum(swept) <= 1
    assert chord_rows() == (0, 0)
    assert sweep(app.backend).fired == 0  # nothing left to send


def test_the_sweep_forgets_a_claimed_chord_whose_callback_ran_and_reports_one_that_did_not(
    app: Celery, callbacks: tuple[str, redis.Redis[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    """Claimants lost after their claim: one had sent the callback (it has a result), the
    other may not have. Neither is sent again."""
    queue, broker = callbacks
    store = app.backend.store
    sent_id, sent_body, sent = started_chord(app, queue, 2)
    lost_id, lost_body, lost = started_chord(app, queue, 2)
    for group_id, requests in ((sent_id, sent), (lost_id, lost)):
        counted_unclaimed(app, group_id, requests)
        with store.engine.begin() as connection:
            connection.execute(
                update(store.tables.chord)
                .where(store.tables.chord.c.group_id == group_id)
                .values(
                    date_fired=chords.utcnow() - STALE - timedelta(seconds=1),
                    claimed_by=requests[-1].id,
                )
            )
    app.backend.store_result(sent_body.id, [0, 1], "SUCCESS")
    with caplog.at_level(logging.ERROR, logger="celery_sa.backend.sweep"):
        swept = sweep(app.backend)
    assert (swept.fired, swept.forgotten, swept.unsent) == (0, 1, 1)
    assert broker.llen(queue) == 0
    [report] = [r.getMessage() for r in caplog.records]
    assert report.startswith(f"Chord {lost_id!r}: its callback {TASKS}.collect[{lost_body.id}]")
    assert report.endswith(
        f"by {lost[-1].id}, has no result: that process may have been lost before sending it"
    )
    assert chord_rows() == (1, 2)  # the reported chord stays, for the operator


# --- nothing acked that was not stored: a real worker, the store failing past its budget ---


@pytest.mark.services("redis")
@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_a_result_the_database_refuses_past_the_budget_is_requeued_not_lost(
    tmp_path: Path, pool: str
) -> None:
    """Late acks, a 1 s budget, the SQLite result file locked for 3 s by another process
    right after a chord's header task returns: its message goes back to the broker, the
    task runs again, its result is stored and the callback runs once."""
    database = tmp_path / "results.sqlite3"
    url = f"celery_sa+sqlite:///{database}"
    broker = service_url("redis")
    runs = tmp_path / "runs.log"
    with running_worker(
        tmp_path,
        result_url=url,
        broker_url=broker,
        pool=pool,
        concurrency=2,
        CELERY_IMPORTS=TASKS,
        CELERY_SA_TEST_RUNS_FILE=str(runs),
        CELERY_TASK_ACKS_LATE="true",
        CELERY_WORKER_PREFETCH_MULTIPLIER="1",
        CELERY_SA_BACKEND_RETRY_TIMEOUT="1",
        CELERY_RESULT_BACKEND_MAX_SLEEP_BETWEEN_RETRIES_MS="200",
        CELERY_DATABASE_ENGINE_OPTIONS='{"connect_args": {"timeout": 0.2}}',
    ) as worker:
        app = producer(broker, url)
        app.conf.task_default_queue = worker.queue
        app.conf.sa_backend_retry_timeout = 60  # the test's reads wait the lock out
        try:
            header = [app.signature(f"{TASKS}.add", (i, 0)) for i in range(3)]
            locker = app.signature(
                f"{TASKS}.lock_results_once", (3, str(tmp_path), str(database), 3.0)
            )
            result = chord([*header, locker], app.signature(f"{TASKS}.collect")).delay()
            assert result.get(timeout=60) == [0, 1, 2, 3]
            locker_id = result.parent.results[-1].id
            assert app.AsyncResult(locker_id).state == "SUCCESS"
        finally:
            app.close()
        output = worker.output
    assert f"lock_results_once[{locker_id}]: failed to store result on the backend; " in output
    assert "its message goes back to the broker to run again" in output
    started = runs.read_text().split()
    assert started.count(locker_id) >= 2  # it ran again
    assert started.count(result.id) == 1  # the callback once
    assert "Unrecoverable error" not in output


def test_a_chord_table_of_celery_sa_0_3_gains_its_new_columns_when_a_backend_first_uses_it(
    app: Celery, callbacks: tuple[str, redis.Redis[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    queue, broker = callbacks
    store = app.backend.store
    chord_table = store.tables.chord
    old = Table(
        chord_table.name,
        MetaData(),
        *(column._copy() for column in chord_table.columns if column.name not in NEW_COLUMNS),
        schema=chord_table.schema,
    )
    with store.engine.begin() as connection:
        chord_table.drop(connection)
        old.create(connection)
    dispose_stores()
    app.backend.__dict__.pop("store")  # the backend's store, made again
    with caplog.at_level(logging.WARNING, logger="celery_sa.backend.store"):
        _, _, requests = started_chord(app, queue, 2)
    assert f"Added the columns claimed_by, callback to {chord_table.fullname}." in caplog.messages
    for request in requests:
        app.backend.mark_as_done(request.id, request.group_index, request=request)
    assert broker.llen(queue) == 1
    assert chord_rows() == (0, 0)


@pytest.mark.services("redis")
@pytest.mark.parametrize("database", ["sqlite"])
def test_a_workers_sweep_sends_a_chord_its_last_part_never_claimed(
    database: str, tmp_path: Path
) -> None:
    """The sweep as it runs: a thread of a real worker's main process, every second here."""
    broker = service_url("redis")
    runs = tmp_path / "runs.log"
    with fresh_result_db(database) as results:
        url = "celery_sa+" + results.url.removeprefix("db+")
        with running_worker(
            tmp_path,
            result_url=url,
            broker_url=broker,
            CELERY_IMPORTS=TASKS,
            CELERY_SA_TEST_RUNS_FILE=str(runs),
            CELERY_SA_CHORD_SWEEP_INTERVAL="1",
        ) as worker:
            app = producer(broker, url)
            try:
                group_id, body, requests = started_chord(app, worker.queue, 3)
                counted_unclaimed(app, group_id, requests)
                assert app.AsyncResult(body.id).get(timeout=30) == [0, 1, 2]
            finally:
                app.close()
                dispose_stores()
            output = worker.output
    assert f"Chord {group_id!r} was complete but unclaimed: the sweep sends it" in output
    assert runs.read_text().split().count(body.id) == 1


@pytest.mark.parametrize(
    ("interval", "expected"), [(0, 0.0), (timedelta(seconds=30), 30.0), (None, 60.0)]
)
def test_the_sweep_interval_is_read_from_celerys_configuration(
    interval: Any, expected: float
) -> None:
    app = Celery("sweep", backend="celery_sa+sqlite://", set_as_current=False)
    if interval is not None:
        app.conf.sa_chord_sweep_interval = interval
    assert app.backend.chord_sweep_interval == expected
    bad = Celery("bad", backend="celery_sa+sqlite://", set_as_current=False)
    bad.conf.sa_chord_sweep_interval = -1
    with pytest.raises(ImproperlyConfigured, match="sa_chord_sweep_interval must be a positive"):
        bad.backend  # noqa: B018
