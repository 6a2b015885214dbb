"""Fixtures: real services when configured, a real Celery worker subprocess, result databases.

A test that needs a service it was not given is skipped with the variable to set, and the
run ends with a list of them; with ``CELERY_SA_REQUIRE_SERVICES=1`` (as in CI) it fails.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.states import READY_STATES
from django.core.management import call_command
from django.db import connections
from django.test import override_settings
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from celery_sa.database import result_alias, result_database
from celery_sa.database.url import sqlalchemy_url
from celery_sa.models import TaskResult
from celery_sa.tables.schema import result_tables

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


def service_url(name: str) -> str:
    """The URL of a real service, or skip (fail under CELERY_SA_REQUIRE_SERVICES=1)."""
    variable = SERVICES[name]
    url = os.environ.get(variable)
    if url:
        return url
    if REQUIRE_SERVICES:
        pytest.fail(f"CELERY_SA_REQUIRE_SERVICES=1 but {variable} is not set ({name}).")
    pytest.skip(f"{SKIP_PREFIX}{name}: set {variable}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if SKIP_PREFIX in str(report.longrepr)
    ]
    if not skipped:
        return
    names = sorted({name for name in SERVICES if f"{SKIP_PREFIX}{name}:" in _reasons(skipped)})
    terminalreporter.write_sep("=", "tests skipped for lack of real services", yellow=True)
    terminalreporter.write_line(
        f"{len(skipped)} test(s) did not run: "
        + ", ".join(f"{name} (set {SERVICES[name]})" for name in names)
        + ". `bash .ci/run` provides them from this machine's services."
    )


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if REQUIRE_SERVICES and reporter and reporter.stats.get("skipped"):
        reporter.write_line("CELERY_SA_REQUIRE_SERVICES=1: no test may skip; failing the run.")
        session.exitstatus = 1


def _reasons(reports: list[Any]) -> str:
    return "\n".join(str(report.longrepr) for report in reports)


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


@pytest.fixture
def table_names(request: pytest.FixtureRequest) -> Iterator[dict[str, str] | None]:
    """CELERY_DATABASE_TABLE_NAMES for the test (parametrize indirectly to set it)."""
    names = getattr(request, "param", None)
    if names is None:
        yield None
        return
    with override_settings(CELERY_DATABASE_TABLE_NAMES=names):
        yield names


@pytest.fixture(params=list(RESULT_DBS))
def result_db(
    request: pytest.FixtureRequest, table_names: dict[str, str] | None
) -> Iterator[ResultDB]:
    """Each result database in turn, with fresh result tables, as CELERY_RESULT_BACKEND."""
    with fresh_result_db(request.param) as database:
        yield database


@pytest.fixture
def embedded_result_db(table_names: dict[str, str] | None) -> Iterator[ResultDB]:
    """The embedded default result database (SQLite, a derived alias), fresh tables."""
    with fresh_result_db("sqlite") as database:
        yield database


@contextmanager
def fresh_result_db(name: str) -> Iterator[ResultDB]:
    service, alias, driver = RESULT_DBS[name]
    if service:
        service_url(service)
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
    engine = create_engine(result_database().url, poolclass=NullPool)
    try:
        result_tables().metadata.drop_all(engine, checkfirst=True)
    finally:
        engine.dispose()


# --- brokers and workers ----------------------------------------------------------------


@pytest.fixture
def sqla_broker(tmp_path: Path) -> str:
    """kombu's SQLAlchemy transport on a SQLite file: the embedded default broker."""
    return f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"


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


@contextmanager
def running_worker(
    tmp_path: Path,
    *,
    result_url: str,
    broker_url: str,
    pool: str = "prefork",
    concurrency: int = 2,
    **variables: str,
) -> Iterator[Worker]:
    """Start ``celery -A project worker`` on its own queue; stop it warm afterwards."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = project_env(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'django.sqlite3'}",
        CELERY_BROKER_URL=broker_url,
        CELERY_RESULT_BACKEND=result_url,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        **variables,
    )
    argv = [sys.executable, "-m", "celery", "-A", "project", "worker", "-l", "INFO"]
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
