"""Helpers the tests share: real services, result databases, a real Celery worker
subprocess, rows as Celery writes them. Fixtures and hooks are in ``conftest.py``."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from celery import Celery
from celery.backends.database.models import Task as CeleryTask
from celery.states import READY_STATES
from django.core.management import call_command
from django.db import connections
from django.test import override_settings
from sqlalchemy import PickleType, Table, create_engine, insert
from sqlalchemy.pool import NullPool

from celery_sa.conf import configured_tables
from celery_sa.db import result_alias, result_database
from celery_sa.db.url import sqlalchemy_url
from celery_sa.models import TaskResult, forget_live_columns
from tests.settings import TEST_TAG

if TYPE_CHECKING:
    from _pytest.mark import ParameterSet

BASE_DIR = Path(__file__).resolve().parent.parent
SERVICES = {
    "mysql": "CELERY_SA_TEST_MYSQL_URL",
    "postgresql": "CELERY_SA_TEST_POSTGRES_URL",
    "redis": "CELERY_SA_TEST_REDIS_URL",
    "rabbitmq": "CELERY_SA_TEST_RABBITMQ_URL",
}
REQUIRE_SERVICES = os.environ.get("CELERY_SA_REQUIRE_SERVICES") == "1"
SKIP_PREFIX = "needs service "
WORKER_START_TIMEOUT = 60.0


def stored_value(raw: bytes | memoryview) -> Any:
    """A result as the installed Celery reads its column: before 5.7 the value itself is
    pickled (PickleType), 5.7 stores it serialized (JSON in these tests)."""
    if isinstance(CeleryTask.__table__.c.result.type, PickleType):
        return pickle.loads(bytes(raw))
    return json.loads(bytes(raw))


def tagged(name: str) -> str:
    """``name`` of a server-wide object (a user, a MariaDB schema), kept apart per run."""
    return f"{name}_{TEST_TAG}" if TEST_TAG else name


def missing_services(names: Iterable[str]) -> list[str]:
    """Those of the real services ``names`` that are not configured."""
    return [name for name in names if not os.environ.get(SERVICES[name])]


def skip_reason(names: Iterable[str]) -> str:
    """Why a test that needs the services ``names`` did not run (the end-of-run summary
    lists the services it finds in these reasons)."""
    return "; ".join(f"{SKIP_PREFIX}{name}: set {SERVICES[name]}" for name in names)


def require_service(name: str) -> None:
    """Skip unless the real service ``name`` is configured (fail under
    CELERY_SA_REQUIRE_SERVICES=1): the fallback for code that reaches a service without a
    ``services`` marker on its test."""
    if not missing_services([name]):
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"CELERY_SA_REQUIRE_SERVICES=1 but {SERVICES[name]} is not set ({name}).")
    pytest.skip(skip_reason([name]))


def service_url(name: str) -> str:
    """The URL of the real service ``name``; its test says it needs it with
    ``@pytest.mark.services(name)``."""
    require_service(name)
    return os.environ[SERVICES[name]]


# --- result databases -------------------------------------------------------------------


@dataclass(frozen=True)
class ResultDB:
    """A result database under test: the Django alias and the URL a worker writes to."""

    name: str
    alias: str
    url: str


RESULT_DBS = {
    # name: (service, Django alias or None for the derived SQLite alias, SQLAlchemy driver)
    "sqlite": (None, None, "sqlite"),
    "mysqlclient": ("mysql", "mysql", "mysql+mysqldb"),
    "pymysql": ("mysql", "mysql", "mysql+pymysql"),
    "postgresql": ("postgresql", "postgresql", "postgresql+psycopg"),
}


def result_db_param(name: str, *values: object) -> ParameterSet:
    """The result database ``name`` (and any further ``values``) as a test parameter,
    marked with the service the database needs."""
    service = RESULT_DBS[name][0]
    return pytest.param(name, *values, marks=pytest.mark.services(service) if service else ())


SCHEMA_DATABASES = [result_db_param("postgresql"), result_db_param("mysqlclient")]
"""The result databases that have schemas (MariaDB calls them databases)."""


@contextmanager
def fresh_result_db(name: str) -> Iterator[ResultDB]:
    service, alias, driver = RESULT_DBS[name]
    if service:
        require_service(service)
    alias = alias or result_alias()
    url = "db+" + sqlalchemy_url(connections[alias].settings_dict, driver).render_as_string(
        hide_password=False
    )
    with override_settings(CELERY_RESULT_BACKEND=url):
        assert result_alias() == alias, "the result URL did not resolve to the alias it came from"
        drop_result_tables()
        call_command("celery_sa_tables", "create", stdout=io.StringIO())
        yield ResultDB(name=name, alias=alias, url=url)
        drop_result_tables()


def drop_result_tables() -> None:
    """Drop the configured result tables (and their sequences) on the result database."""
    forget_live_columns()
    engine = create_engine(result_database().url, poolclass=NullPool)
    try:
        configured_tables().metadata.drop_all(engine, checkfirst=True)
    finally:
        engine.dispose()


# --- brokers and workers ----------------------------------------------------------------


@dataclass
class Worker:
    """A real ``celery worker`` subprocess of the demo project."""

    process: subprocess.Popen[str]
    queue: str
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def project_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    """The environment of a demo-project subprocess: nothing from a developer's .env."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CELERY_") and key != "DATABASE_URL"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        ENV_FILE=os.devnull,
        DEMO_DATA_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
    )
    env.update(variables)
    return env


def manage_py(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python manage.py *args`` of the demo project, run as a command in ``env``."""
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )


@contextmanager
def running_worker(
    tmp_path: Path,
    *,
    result_url: str,
    broker_url: str,
    pool: str = "prefork",
    concurrency: int = 2,
    app: str = "project",
    **variables: str,
) -> Iterator[Worker]:
    """Start ``celery -A project worker`` (or another ``app``) on its own queue; stop it
    warm afterwards."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = project_env(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'django.sqlite3'}",
        CELERY_BROKER_URL=broker_url,
        CELERY_RESULT_BACKEND=result_url,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        **variables,
    )
    argv = [sys.executable, "-m", "celery", "-A", app, "worker", "-l", "INFO"]
    argv += ["-P", pool, "-c", str(concurrency), "-Q", queue, "-n", f"{queue}@%h"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    process = subprocess.Popen(
        argv,
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = Worker(process=process, queue=queue)
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            worker.lines.append(line)
            if " ready." in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while not ready.wait(0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            pytest.fail(f"the worker did not start:\n{worker.output}")
    try:
        yield worker
    finally:
        worker.stop()


def producer(broker_url: str, result_url: str) -> Celery:
    """A Celery app in the test process that sends tasks by name, as any client would."""
    app = Celery("producer", broker=broker_url, backend=result_url, set_as_current=False)
    app.conf.result_extended = True
    if broker_url.startswith("sqla+sqlite"):
        app.conf.broker_transport_options = {"connect_args": {"timeout": 30}}
    return app


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


# --- rows as Celery writes them ---------------------------------------------------------


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
