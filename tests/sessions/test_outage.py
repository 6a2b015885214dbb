"""SessionTask through a database outage, on a private MariaDB stopped and started: a task
during it fails at once with the driver's error, the first one after it works."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from celery import Celery
from django.test import override_settings
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from celery_sa.sessions import SessionTask, get_engine
from tests.support.mariadb import PrivateMariaDB
from tests.support.worker_tasks import Base, Row

pytestmark = pytest.mark.services("mysql")
app = Celery("session-outage-tests", set_as_current=False)
# Connections in the pool when the server goes away: each one is stale after it.
POOLED = 3
# A server that is down refuses connections: a task learns it at once, not after a timeout.
REFUSED_WITHIN = 5.0


@app.task(bind=True, base=SessionTask)
def count_rows(self: SessionTask) -> int:
    return int(self.session.scalar(select(func.count()).select_from(Row)) or 0)


@app.task(bind=True, base=SessionTask)
def add_row_then(self: SessionTask, key: str, meanwhile: Callable[[], None]) -> None:
    self.session.add(Row(key=key))
    self.session.flush()
    meanwhile()
    self.session.commit()


@contextmanager
def use(server: PrivateMariaDB, **engine_options: Any) -> Iterator[None]:
    """SessionTask's default database on ``server``, its pool holding POOLED connections."""
    with override_settings(
        CELERY_SA_DATABASE_URL=server.url, CELERY_SA_ENGINE_OPTIONS=engine_options
    ):
        engine = get_engine()
        Base.metadata.create_all(engine)
        with ExitStack() as held:
            for _ in range(POOLED):
                held.enter_context(engine.connect()).execute(text("SELECT 1"))
        assert engine.pool.checkedin() == POOLED  # type: ignore[attr-defined]
        yield


def checked_out() -> int:
    return int(get_engine().pool.checkedout())  # type: ignore[attr-defined]


def test_a_task_during_an_outage_fails_at_once_and_the_next_after_it_works(
    private_mariadb: PrivateMariaDB,
) -> None:
    with use(private_mariadb):
        private_mariadb.stop()
        for _ in range(2):  # the stale connections, then a new one: refused either way
            started = time.monotonic()
            with pytest.raises(OperationalError, match="Can't connect to server"):
                count_rows.apply().get()
            assert time.monotonic() - started < REFUSED_WITHIN
            assert checked_out() == 0
        private_mariadb.start()
        assert count_rows.apply().get() == 0


@pytest.mark.parametrize(
    ("engine_options", "first_after_restart"),
    [
        pytest.param({}, "SUCCESS", id="pool_pre_ping (the default)"),
        # Without it the first stale connection fails its task, and SQLAlchemy then drops
        # the whole pool: the other stale connections never fail a task.
        pytest.param({"pool_pre_ping": False}, "FAILURE", id="no pool_pre_ping"),
    ],
)
def test_after_a_restart_between_two_tasks_the_pool_is_renewed(
    private_mariadb: PrivateMariaDB, engine_options: dict[str, Any], first_after_restart: str
) -> None:
    with use(private_mariadb, **engine_options):
        private_mariadb.stop()
        private_mariadb.start()
        first = count_rows.apply()
        assert first.state == first_after_restart, first.result
        assert [count_rows.apply().state for _ in range(POOLED)] == ["SUCCESS"] * POOLED
        assert checked_out() == 0


def test_a_task_whose_database_goes_away_mid_transaction_writes_nothing(
    private_mariadb: PrivateMariaDB,
) -> None:
    with use(private_mariadb):
        with pytest.raises(OperationalError, match=r"Lost connection|gone away"):
            add_row_then.apply(("lost", private_mariadb.stop)).get()
        assert checked_out() == 0
        private_mariadb.start()
        assert count_rows.apply().get() == 0
        add_row_then.apply(("kept", lambda: None)).get()
        assert count_rows.apply().get() == 1
