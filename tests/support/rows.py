"""Result rows as Celery writes them: made by hand, read back, waited for."""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery.backends.database.models import Task as CeleryTask
from celery.states import READY_STATES
from django.db import connections
from sqlalchemy import PickleType, Table, create_engine, insert
from sqlalchemy.pool import NullPool

from celery_sa.conf import configured_tables
from celery_sa.db import result_database
from celery_sa.db.url import sqlalchemy_url
from celery_sa.models import TaskResult
from tests.support.workers import Worker


def stored_value(raw: bytes | memoryview) -> Any:
    """A result as the installed Celery reads its column: before 5.7 the value itself is
    pickled (PickleType), 5.7 stores it serialized (JSON in these tests)."""
    if isinstance(CeleryTask.__table__.c.result.type, PickleType):
        return pickle.loads(bytes(raw))
    return json.loads(bytes(raw))


def insert_into(table: Table, rows: Iterable[dict[str, Any]]) -> None:
    """Insert rows as Celery's backend would (ids from its sequence where it uses one),
    through the driver Django uses: PyMySQL sends bytes hex-encoded, so a 10 MB value
    would exceed MariaDB's default 16 MB max_allowed_packet."""
    database = connections[result_database().alias].settings_dict
    engine = create_engine(sqlalchemy_url(database), poolclass=NullPool)
    with engine.begin() as connection:
        for values in rows:  # one by one: a 10 MB row is a packet of its own
            connection.execute(insert(table), values)
    engine.dispose()


def insert_rows(*rows: dict[str, Any]) -> None:
    """Insert task result rows (see :func:`row`)."""
    insert_into(configured_tables().task, rows)


def row(task_id: str, **values: Any) -> dict[str, Any]:
    """A task result row as Celery stores it, with ``values`` changed."""
    return {
        "task_id": task_id,
        "status": "SUCCESS",
        "date_done": datetime(2026, 1, 2, 3, 4, 5),
        "name": "app.tasks.job",
        "args": b"[1, 2]",
        "kwargs": b"{}",
        "result": b"null",
        **values,
    }


def ago(**delta: float) -> datetime:
    """A naive UTC wall time (the test settings' Celery zone and PostgreSQL's TimeZone)."""
    return datetime.now(UTC).replace(tzinfo=None) - timedelta(**delta)


def wait_for_results(task_ids: list[str], worker: Worker, timeout: float = 60.0) -> None:
    """Wait until every task has a finished row in the result table."""
    deadline = time.monotonic() + timeout
    while True:
        done = TaskResult.objects.filter(task_id__in=task_ids, status__in=READY_STATES).count()
        if done == len(task_ids):
            return
        if time.monotonic() > deadline or worker.process.poll() is not None:
            pytest.fail(
                f"{done} of {len(task_ids)} tasks finished; worker output:\n{worker.output}"
            )
        time.sleep(0.2)
