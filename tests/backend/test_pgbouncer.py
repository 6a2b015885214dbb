"""Workers (the result backend and SessionTask), the purge and the admin through a real
PgBouncer in transaction pooling (Debian's pgbouncer in front of the machine's PostgreSQL):
no prepared-statement error, no retry."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from celery import chord, group
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from celery_sa.backend.store import dispose_stores
from celery_sa.sql import vendors
from tests.support.commands import manage_py, project_env
from tests.support.databases import ResultDB, fresh_result_db
from tests.support.pgbouncer import PrivatePgBouncer, private_pgbouncer
from tests.support.services import service_url
from tests.support.worker_tasks import Base, Row
from tests.support.workers import producer, running_worker

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.services("postgresql", "redis"),
]

TASKS = "tests.support.backend_tasks"
# What a session state or a prepared statement lost between transactions looks like, and
# the backend's retries (each logged as "Failed operation … Retrying").
TROUBLE = re.compile(
    r"prepared statement|DuplicatePreparedStatement|InvalidSqlStatementName|Retrying|"
    r"Traceback|ERROR/",
)


@pytest.fixture
def postgres() -> Iterator[ResultDB]:
    with fresh_result_db("postgresql") as results:
        try:
            yield results
        finally:
            dispose_stores()


@pytest.fixture
def bouncer(postgres: ResultDB, tmp_path: Path) -> Iterator[PrivatePgBouncer]:
    upstream = postgres.url.removeprefix("db+")
    with private_pgbouncer(tmp_path / "pgbouncer", upstream, pool_size=4) as started:
        yield started


def the_same_statement_on_two_clients(first: Engine, second: Engine) -> None:
    """Each client runs one statement 8 times, a transaction each, through one server
    connection (a pool of 1): a statement prepared by one is met by the other."""
    for engine in (first, second):
        with engine.connect() as connection:
            for n in range(8):
                connection.execute(text("SELECT :n + 1"), {"n": n})
                connection.commit()


def test_prepared_statements_are_off_so_a_transaction_pooler_can_sit_in_between(
    postgres: ResultDB, tmp_path: Path
) -> None:
    upstream = postgres.url.removeprefix("db+")
    with private_pgbouncer(tmp_path / "pgbouncer", upstream, pool_size=1) as bouncer:
        url = make_url(bouncer.url)

        def engine(options: dict[str, object]) -> Engine:
            return create_engine(url, **vendors.engine_options(url, options))

        ours = [engine({}), engine({})]
        the_same_statement_on_two_clients(*ours)
        # psycopg's own default, as before: the second client meets the first's statement.
        default = [engine({"connect_args": {"prepare_threshold": 5}}) for _ in range(2)]
        with pytest.raises(DBAPIError) as raised:
            the_same_statement_on_two_clients(*default)
        assert isinstance(
            raised.value.orig,
            psycopg.errors.DuplicatePreparedStatement | psycopg.errors.InvalidSqlStatementName,
        )
        for each in (*ours, *default):
            each.dispose()


@pytest.mark.parametrize(("pool", "concurrency"), [("prefork", 4), ("threads", 8), ("solo", 1)])
def test_a_worker_through_pgbouncer_stores_everything_without_an_error_or_a_retry(
    bouncer: PrivatePgBouncer, tmp_path: Path, pool: str, concurrency: int
) -> None:
    broker = service_url("redis")
    url = "celery_sa+" + bouncer.url
    with running_worker(
        tmp_path,
        result_url=url,
        broker_url=broker,
        pool=pool,
        concurrency=concurrency,
        CELERY_IMPORTS=TASKS,
    ) as worker:
        app = producer(broker, url)
        app.conf.task_default_queue = worker.queue
        try:
            sent = [app.signature(f"{TASKS}.add", (i, i)).delay() for i in range(300)]
            members = group(app.signature(f"{TASKS}.add", (i, 1)) for i in range(20)).delay()
            members.save()
            callback = chord(
                [app.signature(f"{TASKS}.add", (i, 0)) for i in range(20)],
                app.signature(f"{TASKS}.collect"),
            ).delay()
            assert [result.get(timeout=60) for result in sent] == [i + i for i in range(300)]
            assert members.get(timeout=60) == [i + 1 for i in range(20)]
            assert callback.get(timeout=60) == list(range(20))
            assert bouncer.server_connections() <= 4
        finally:
            app.close()
    trouble = [line for line in worker.lines if TROUBLE.search(line)]
    assert trouble == [], "".join(trouble[:20])


def test_a_chord_completes_on_a_pool_of_one_connection(postgres: ResultDB, tmp_path: Path) -> None:
    """The last header task reads the header with the connection that counted it given
    back: holding one while asking for another waits for ever on a full pool (as 8 threads
    did on PgBouncer's 4 server connections, until its query_wait_timeout)."""
    broker = service_url("redis")
    url = "celery_sa+" + postgres.url.removeprefix("db+")
    one = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 5}
    with running_worker(
        tmp_path,
        result_url=url,
        broker_url=broker,
        pool="solo",
        concurrency=1,
        CELERY_IMPORTS=TASKS,
        CELERY_DATABASE_ENGINE_OPTIONS=json.dumps(one),
    ) as worker:
        app = producer(broker, url)
        app.conf.task_default_queue = worker.queue
        try:
            callback = chord(
                [app.signature(f"{TASKS}.add", (i, 0)) for i in range(3)],
                app.signature(f"{TASKS}.collect"),
            ).delay()
            assert callback.get(timeout=60) == [0, 1, 2]
        finally:
            app.close()
    trouble = [line for line in worker.lines if TROUBLE.search(line)]
    assert trouble == [], "".join(trouble[:20])


def test_session_tasks_through_pgbouncer_commit_every_row_without_an_error(
    bouncer: PrivatePgBouncer, postgres: ResultDB, tmp_path: Path
) -> None:
    direct = create_engine(postgres.url.removeprefix("db+"))
    Base.metadata.create_all(direct)
    broker = service_url("redis")
    url = "celery_sa+" + bouncer.url
    try:
        with running_worker(
            tmp_path,
            result_url=url,
            broker_url=broker,
            pool="threads",
            concurrency=8,
            CELERY_IMPORTS="tests.support.worker_tasks",
            CELERY_SA_DATABASE_URL=bouncer.url,
        ) as worker:
            app = producer(broker, url)
            app.conf.task_default_queue = worker.queue
            try:
                keys = [f"k{n}" for n in range(300)]
                sent = [
                    app.signature("tests.support.worker_tasks.record", (k, "success")).delay()
                    for k in keys
                ]
                assert [result.get(timeout=60) for result in sent] == keys
            finally:
                app.close()
        with direct.connect() as connection:
            stored = connection.scalar(select(func.count()).select_from(Row))
        assert stored == 300
    finally:
        Base.metadata.drop_all(direct)
        direct.dispose()
    trouble = [line for line in worker.lines if TROUBLE.search(line)]
    assert trouble == [], "".join(trouble[:20])


def test_the_purge_stats_and_admin_through_pgbouncer(
    bouncer: PrivatePgBouncer, tmp_path: Path
) -> None:
    env = project_env(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'django.sqlite3'}",
        CELERY_RESULT_BACKEND="db+" + bouncer.url,
    )
    with psycopg.connect(bouncer.url.replace("+psycopg", ""), autocommit=True) as connection:
        for n in range(50):
            connection.execute(
                "INSERT INTO celery_taskmeta (id, task_id, status, date_done, name) VALUES "
                "(nextval('task_id_sequence'), %s, 'SUCCESS', now() - interval '10 days', "
                "'app.tasks.old')",
                (f"old-{n}",),
                prepare=False,
            )
    assert manage_py(env, "migrate", "-v", "0").returncode == 0
    stats = manage_py(env, "celery_sa_stats", "--since", "30d")
    assert stats.returncode == 0, stats.stderr
    assert "app.tasks.old" in stats.stdout
    purged = manage_py(env, "celery_sa_purge", "--older-than", "7d", "--batch-size", "7")
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.startswith("Deleted 50 task results"), purged.stdout
    pages = manage_py(env, "shell", "-v", "0", "-c", ADMIN_PAGES)
    assert pages.returncode == 0, pages.stderr
    assert pages.stdout.split() == ["200"] * 5, pages.stdout + pages.stderr


ADMIN_PAGES = """
from django.contrib.auth.models import User
from django.test import Client
client = Client()
client.force_login(User.objects.create_superuser("admin"))
for path in ("taskresult/", "groupresult/", "chord/", "overview/", "groupresult/?progress=failed"):
    print(client.get("/admin/celery_sa/" + path, HTTP_HOST="localhost").status_code)
"""
