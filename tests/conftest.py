"""Fixtures and hooks: real services when configured, result databases, brokers (the browser's
are in ``browser/conftest.py``).

A test says which real services it needs with ``@pytest.mark.services("mysql", …)``; the
``result_db`` fixture's parameters carry their database's. When one is not configured the
test is skipped with the variable to set, and the run ends with a list of them; with
``CELERY_SA_REQUIRE_SERVICES=1`` (as in CI) it fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.test import override_settings

from celery_sa.backend.store import dispose_stores
from tests.settings import TEST_DIR
from tests.support.databases import RESULT_DBS, ResultDB, fresh_result_db, result_db_param
from tests.support.discovery import FOUND
from tests.support.mariadb import PrivateMariaDB
from tests.support.private_servers import private_server
from tests.support.services import (
    REQUIRE_SERVICES,
    SERVICES,
    SKIP_PREFIX,
    missing_services,
    require_service,
    service_url,
    skip_reason,
)
from tests.support.workers import Worker, producer, running_worker

BACKEND_TASKS = "tests.support.backend_tasks"

# Hypothesis keeps its caches (Unicode data, the constants it draws from the code) with the
# tests' other files, not in a .hypothesis/ of the working tree; the fuzz tests keep no
# database of examples.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(TEST_DIR / "hypothesis"))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two test processes per core, at most 4 (most tests spend their time
    waiting for a worker subprocess, a database or a browser, not computing), unless
    pytest-xdist's own PYTEST_XDIST_AUTO_NUM_WORKERS says (.ci/run: two suites side by
    side)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    return min(4, 2 * (os.cpu_count() or 1))


@pytest.fixture(scope="session")
def django_db_modify_db_settings_xdist_suffix() -> None:
    """Not pytest-django's ``_gw0`` suffix: under pytest-xdist the test settings' tag
    already names each worker's databases (tests/settings.py), and the tests build their
    URLs from those names."""


def needed_services(item: pytest.Item) -> list[str]:
    """The services the test's ``services`` markers name (its own, its class's, its
    module's, its parameters')."""
    return [name for marker in item.iter_markers("services") for name in marker.args]


# What keeps a test out of the fast tier (`-m fast`): a real service, or processes of its own.
NOT_FAST = ("services", "slow", "load", "outage")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(name) for name in NOT_FAST):
            item.add_marker(pytest.mark.fast)
    # The load tests (a minute or two each) first: started last, they would run on alone
    # after the rest has finished.
    items.sort(key=lambda item: item.get_closest_marker("load") is None)
    # A skip marker, not pytest.skip() in a hook: the summary then names the test's module,
    # not tests/support/services.py.
    if REQUIRE_SERVICES:
        return  # they fail in pytest_runtest_setup instead
    for item in items:
        missing = missing_services(needed_services(item))
        if missing:
            item.add_marker(pytest.mark.skip(reason=skip_reason(missing)))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture runs: a missing service fails the test, not a fixture halfway.
    if REQUIRE_SERVICES:
        for name in needed_services(item):
            require_service(name)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    found = set(filter(None, os.environ.get(FOUND, "").split(",")))
    used = [
        f"{name} ({'found at ' + os.environ[variable] if variable in found else variable})"
        for name, variable in SERVICES.items()
        if os.environ.get(variable)
    ]
    unused = [
        f"{name} (set {variable})"
        for name, variable in SERVICES.items()
        if not os.environ.get(variable)
    ]
    terminalreporter.write_sep("=", "real services", bold=True)
    terminalreporter.write_line("used: " + (", ".join(used) or "none"))
    if unused:
        terminalreporter.write_line(
            "not used: " + ", ".join(unused) + "; or start it on its standard local port "
            "(tests/support/discovery.py lists the URLs tried)"
        )
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


@pytest.fixture
def table_names(request: pytest.FixtureRequest) -> Iterator[dict[str, str] | None]:
    """CELERY_DATABASE_TABLE_NAMES for the test (parametrize indirectly to set it)."""
    names = getattr(request, "param", None)
    if names is None:
        yield None
        return
    with override_settings(CELERY_DATABASE_TABLE_NAMES=names):
        yield names


@pytest.fixture(params=[result_db_param(name) for name in RESULT_DBS])
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


@pytest.fixture
def sqla_broker(tmp_path: Path) -> str:
    """kombu's SQLAlchemy transport on a SQLite file: the embedded default broker."""
    return f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"


@pytest.fixture
def private_mariadb(tmp_path: Path) -> Iterator[PrivateMariaDB]:
    """A MariaDB server of the test's own (tests/support/mariadb.py), to stop and start."""
    with private_server("mysql", tmp_path / "mariadb") as server:
        assert isinstance(server, PrivateMariaDB)
        yield server


@pytest.fixture(
    params=[
        pytest.param(
            name, marks=pytest.mark.services(*filter(None, [RESULT_DBS[name][0]]), "redis")
        )
        for name in ("sqlite", "mysqlclient", "postgresql")
    ]
)
def worker_and_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Worker, Celery]]:
    """A real worker on celery_sa's backend (tests.support.backend_tasks, a Redis broker,
    without task_track_started) on SQLite, MariaDB and PostgreSQL, and a client app that
    sends to its queue. Each task run is noted in ``tmp_path / "runs.log"``."""
    broker = service_url("redis")
    with fresh_result_db(request.param) as results:
        url = "celery_sa+" + results.url.removeprefix("db+")
        with running_worker(
            tmp_path,
            result_url=url,
            broker_url=broker,
            CELERY_IMPORTS=BACKEND_TASKS,
            CELERY_SA_TEST_RUNS_FILE=str(tmp_path / "runs.log"),
        ) as worker:
            app = producer(broker, url)
            app.conf.task_default_queue = worker.queue
            try:
                yield worker, app
            finally:
                app.close()
                dispose_stores()
