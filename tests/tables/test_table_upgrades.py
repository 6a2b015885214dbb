"""``celery_sa_tables status``/``upgrade`` on tables that older Celery (or celery_sa) versions
created."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError
from django.db import connections
from django.test import override_settings
from sqlalchemy import (
    Connection,
    Index,
    MetaData,
    Table,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url

from celery_sa.conf import configured_tables
from celery_sa.management.commands import celery_sa_tables
from celery_sa.sql import vendors
from celery_sa.sql.schema import result_tables
from tests.settings import TEST_DATABASE
from tests.support.commands import BASE_DIR, project_env
from tests.support.databases import (
    RESULT_DBS,
    SCHEMA_DATABASES,
    ResultDB,
    drop_result_tables,
    fresh_result_db,
    result_db_param,
    tagged,
)
from tests.support.tables import FIXTURE_DIALECT, LEGACY, engine, load_legacy, manage, snapshot
from tests.support.workers import producer, running_worker

RW_USER = tagged("celery_sa_rw")

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
VERSIONS = ["4.2.2", "4.4.7", "5.2.7", "5.7.0"]
BEYOND_INT = 2**31 + 5
NEW_INDEX = "ix_celery_taskmeta_status_date_done_name"
OLD_INDEX = "ix_celery_taskmeta_status_date_done"
"""The index celery_sa 0.1 to 0.3 made on (status, date_done), which NEW_INDEX covers."""


@pytest.mark.parametrize("version", VERSIONS)
def test_upgrade_brings_old_tables_up_to_date_and_keeps_every_row(
    result_db: ResultDB, version: str
) -> None:
    load_legacy(result_db, version)
    before = snapshot()

    code, output = manage("status")
    assert code == 1
    assert output.splitlines()[-1].endswith(
        "pending: run `manage.py celery_sa_tables upgrade` (--dry-run shows the SQL)."
    )
    if result_db.name != "sqlite":  # SQLite's INTEGER key is 64-bit already
        assert "  - column id is INTEGER: ids stop at 2,147,483,647; widen it to BIGINT" in output
    assert "index on (status, date_done, name) is missing" in output

    code, dry_run = manage("upgrade", "--dry-run")
    assert code == 0
    assert re.search(r"^(ALTER TABLE|CREATE INDEX).*;$", dry_run, re.MULTILINE)
    assert dry_run.splitlines()[-1].startswith("Would apply ")
    assert manage("status") == (1, output)  # the dry run changed nothing

    code, applied = manage("upgrade")
    assert code == 0
    assert applied.splitlines()[-1] == dry_run.splitlines()[-1].replace("Would apply", "Applied")
    assert manage("status") == (
        0,
        f"{configured_tables().task.name} (about 3 rows): up to date\n"
        f"{configured_tables().group.name} (about 0 rows): up to date\n"
        "celery_sa_chord (about 0 rows): up to date\n"
        "celery_sa_chord_part: up to date\n"
        "celery_sa_attempt: up to date\n"
        "celery_sa_group_member: up to date\n"
        "The result tables are up to date.\n",
    )
    assert manage("upgrade") == (0, "Nothing to do: the result tables are up to date.\n")
    assert snapshot() == before


def advance_ids(result_db: ResultDB) -> None:
    """Make the next task id exceed 2**31, as after two billion results."""
    table = configured_tables().task
    database = engine()
    with database.begin() as connection:
        if result_db.name == "sqlite":
            connection.execute(
                text("UPDATE sqlite_sequence SET seq = :seq WHERE name = :name"),
                {"seq": BEYOND_INT, "name": table.name},
            )
        else:
            connection.exec_driver_sql(f"ALTER SEQUENCE task_id_sequence RESTART WITH {BEYOND_INT}")
    database.dispose()


@pytest.mark.parametrize(
    ("result_db", "version"),
    [
        *[result_db_param("mysqlclient", version) for version in VERSIONS],
        result_db_param("pymysql", "5.2.7"),
        result_db_param("postgresql", "4.2.2"),
        result_db_param("postgresql", "5.7.0"),
        result_db_param("sqlite", "4.2.2"),
    ],
    indirect=["result_db"],
)
@pytest.mark.slow
def test_celery_57_stores_and_reads_results_in_upgraded_tables(
    result_db: ResultDB, version: str, sqla_broker: str, tmp_path: Path
) -> None:
    load_legacy(result_db, version)
    assert manage("upgrade")[0] == 0
    advance_ids(result_db)
    big = 1_500_000 if result_db.name != "sqlite" else 100_000
    with running_worker(tmp_path, result_url=result_db.url, broker_url=sqla_broker) as worker:
        app = producer(sqla_broker, result_db.url)
        try:
            small = app.send_task("project.tasks.add", (20, 22), queue=worker.queue)
            large = app.send_task("project.tasks.text_of_size", (big,), queue=worker.queue)
            # Celery itself reads the results back from the upgraded table.
            assert small.get(timeout=60) == 42, worker.output
            assert large.get(timeout=60) == "x" * big, worker.output
        finally:
            app.close()
    ids = dict((row[1], row[0]) for row in snapshot())
    assert ids[small.id] > 2**31 and ids[large.id] > 2**31
    assert ids["old-0"] < 10  # the old rows are still there


def stored(task_id: str) -> dict[str, Any]:
    database = engine()
    with database.connect() as connection:
        # As the live table is (a legacy one has no date_started).
        table = Table(configured_tables().task.name, MetaData(), autoload_with=connection)
        row = connection.execute(select(table).where(table.c.task_id == task_id)).one()
    database.dispose()
    return dict(row._mapping)


@pytest.mark.parametrize("result_db", [result_db_param("mysqlclient")], indirect=True)
def test_without_the_upgrade_celery_loses_a_70_kb_result_on_mariadb(
    result_db: ResultDB, sqla_broker: str, tmp_path: Path
) -> None:
    load_legacy(result_db, "5.7.0")  # the table Celery 5.7 itself creates
    size = 70_000
    with running_worker(tmp_path, result_url=result_db.url, broker_url=sqla_broker) as worker:
        app = producer(sqla_broker, result_db.url)
        try:
            lost = app.send_task("project.tasks.text_of_size", (size,), queue=worker.queue)
            # Celery 5.7 wraps the driver's error, 5.5 and 5.6 raise it as it is.
            lost_result = "failed to store result on the backend|Data too long for column"
            with pytest.raises(Exception, match=lost_result):
                lost.get(timeout=60)
            assert "Data too long for column 'result'" in str(stored(lost.id)["traceback"])
            assert manage("upgrade")[0] == 0  # with the worker running
            kept = app.send_task("project.tasks.text_of_size", (size,), queue=worker.queue)
            assert kept.get(timeout=60) == "x" * size
        finally:
            app.close()


def test_a_table_that_is_not_a_celery_table_is_refused(embedded_result_db: ResultDB) -> None:
    drop_result_tables()
    database = engine()
    with database.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE celery_taskmeta (id INTEGER, note TEXT)")
    database.dispose()
    message = (
        "celery_taskmeta exists but is not a Celery result table "
        "(no column task_id, status, result, date_done, traceback)."
    )
    for subcommand in ("status", "upgrade"):
        with pytest.raises(CommandError) as caught:
            manage(subcommand)
        assert str(caught.value) == message
        assert caught.value.returncode == 2
    tables = connections["celery_sa"].introspection.table_names()
    assert "celery_tasksetmeta" not in tables  # upgrade created nothing


@pytest.fixture
def limited_user(result_db: ResultDB) -> Iterator[str]:
    """A MariaDB user who may read and write rows but not ALTER tables."""
    with connections["mysql"].cursor() as cursor:
        cursor.execute(f"DROP USER IF EXISTS '{RW_USER}'@'%'")
        cursor.execute(f"CREATE USER '{RW_USER}'@'%' IDENTIFIED BY 'rw'")
        cursor.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TEST_DATABASE}.* TO '{RW_USER}'@'%'"
        )
    url = make_url(result_db.url.removeprefix("db+")).set(username=RW_USER, password="rw")
    yield "db+" + url.render_as_string(hide_password=False)
    with connections["mysql"].cursor() as cursor:
        cursor.execute(f"DROP USER IF EXISTS '{RW_USER}'@'%'")


@pytest.mark.parametrize("result_db", [result_db_param("mysqlclient")], indirect=True)
def test_a_denied_alter_names_the_statement_and_changes_nothing(
    result_db: ResultDB, limited_user: str, tmp_path: Path
) -> None:
    load_legacy(result_db, "5.2.7")
    manage("create")  # as root: the chord counter's tables, so only ALTERs are left to deny
    before = snapshot()
    run = subprocess.run(
        [sys.executable, "manage.py", "celery_sa_tables", "upgrade"],
        cwd=BASE_DIR,
        env=project_env(tmp_path, CELERY_RESULT_BACKEND=limited_user),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"CommandError: (1142, \"ALTER command denied to user '{RW_USER}'")
    assert "(while running: ALTER TABLE celery_taskmeta MODIFY id BIGINT NOT NULL" in line
    assert snapshot() == before
    assert manage("status")[0] == 1


@pytest.mark.slow
def test_status_exit_codes_as_a_deploy_script_sees_them(
    embedded_result_db: ResultDB, tmp_path: Path
) -> None:
    env = project_env(tmp_path, CELERY_RESULT_BACKEND=embedded_result_db.url)
    argv = [sys.executable, "manage.py", "celery_sa_tables", "status"]
    up_to_date = subprocess.run(argv, cwd=BASE_DIR, env=env, capture_output=True, text=True)
    assert (up_to_date.returncode, up_to_date.stdout.splitlines()[-1]) == (
        0,
        "The result tables are up to date.",
    )
    drop_result_tables()
    missing = subprocess.run(argv, cwd=BASE_DIR, env=env, capture_output=True, text=True)
    assert missing.returncode == 1
    assert (
        missing.stdout.splitlines()[0] == "celery_taskmeta: missing (create or upgrade creates it)"
    )
    unreachable = subprocess.run(
        argv,
        cwd=BASE_DIR,
        env={**env, "CELERY_RESULT_BACKEND": "db+postgresql+psycopg://u@127.0.0.1:1/r"},
        capture_output=True,
        text=True,
    )
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith(
        "CommandError: Cannot connect to the result database (postgresql+psycopg://u@127.0.0.1:1/r)"
    )


@pytest.mark.parametrize(
    "result_db", [result_db_param("mysqlclient"), result_db_param("postgresql")], indirect=True
)
def test_a_large_table_is_announced_before_it_is_rewritten(
    result_db: ResultDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_legacy(result_db, "5.7.0")
    monkeypatch.setattr(celery_sa_tables, "LARGE_TABLE_ROWS", 1)
    code, output = manage("upgrade", "--noinput")
    assert code == 0
    assert re.search(
        r"^celery_taskmeta has about \d+ rows and widening a type rewrites all of them\. ",
        output,
        re.MULTILINE,
    )


@pytest.mark.parametrize(
    "table_names", [{"task": "qc_taskmeta", "group": "qc_tasksetmeta"}], indirect=True
)
def test_custom_table_names_are_inspected_and_upgraded(
    table_names: dict[str, str], result_db: ResultDB
) -> None:
    drop_result_tables()
    sql = (LEGACY / f"celery-4.4.7.{FIXTURE_DIALECT[result_db.name]}.sql").read_text()
    sql = sql.replace("celery_taskmeta", "qc_taskmeta").replace(
        "celery_tasksetmeta", "qc_tasksetmeta"
    )
    database = engine()
    with database.begin() as connection:
        for statement in re.split(r";\s*(?:\n|$)", sql):
            if statement.strip():
                connection.exec_driver_sql(statement)
    database.dispose()
    code, output = manage("status")
    assert code == 1
    assert output.startswith("qc_taskmeta (about 0 rows): ")
    assert manage("upgrade")[0] == 0
    assert manage("status")[1].splitlines()[-1] == "The result tables are up to date."


def test_upgrade_dry_run_prints_the_statements_for_the_live_tables(
    embedded_result_db: ResultDB,
) -> None:
    load_legacy(embedded_result_db, "4.2.2")
    code, output = manage("upgrade", "--dry-run")
    assert code == 0
    assert "ALTER TABLE celery_taskmeta ADD COLUMN name VARCHAR(155);" in output.splitlines()
    assert manage("status")[0] == 1  # printing changed nothing


@pytest.mark.parametrize("result_db", [result_db_param("postgresql")], indirect=True)
def test_an_index_left_invalid_by_an_interrupted_build_is_rebuilt(result_db: ResultDB) -> None:
    database = engine()
    with database.begin() as connection:
        # What a cancelled CREATE INDEX CONCURRENTLY leaves behind.
        connection.exec_driver_sql(
            f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{NEW_INDEX}'::regclass"
        )
    database.dispose()
    code, output = manage("status")
    assert code == 1
    assert (
        f"  - index {NEW_INDEX} is invalid (an interrupted build); build it again"
    ) in output.splitlines()
    code, dry_run = manage("upgrade", "--dry-run")
    assert dry_run.splitlines()[-3:] == [
        f"DROP INDEX CONCURRENTLY IF EXISTS {NEW_INDEX};",
        f"CREATE INDEX CONCURRENTLY {NEW_INDEX} ON celery_taskmeta (status, date_done, name);",
        "Would apply 1 change.",
    ]
    assert manage("upgrade")[0] == 0
    assert manage("status")[0] == 0


@pytest.mark.parametrize("database", SCHEMA_DATABASES)
def test_tables_in_a_custom_schema_are_created_and_inspected(database: str) -> None:
    _, alias, _ = RESULT_DBS[database]
    schema = tagged("test_celery_sa_schema")
    with connections[str(alias)].cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    try:
        schemas = {"task": schema, "group": schema}
        with override_settings(CELERY_DATABASE_TABLE_SCHEMAS=schemas), fresh_result_db(database):
            code, output = manage("status")
            assert code == 0
            assert output.splitlines()[0] == f"{schema}.celery_taskmeta (about 0 rows): up to date"
    finally:
        drop = "DROP SCHEMA {} CASCADE" if database == "postgresql" else "DROP SCHEMA {}"
        with connections[str(alias)].cursor() as cursor:
            cursor.execute(drop.format(schema))


def change_indexes(change: Callable[[Connection, Table], None]) -> None:
    """``change(connection, task table as it is live)``, committed."""
    database = engine()
    with database.begin() as connection:
        change(
            connection, Table(configured_tables().task.name, MetaData(), autoload_with=connection)
        )
    database.dispose()


def without_the_new_index(connection: Connection, table: Table) -> None:
    (new,) = (index for index in table.indexes if index.name == NEW_INDEX)
    new.drop(connection)


def as_celery_sa_03_made_it(connection: Connection, table: Table) -> None:
    """The task table's index on (status, date_done) as celery_sa 0.3 made it, instead of the
    one on (status, date_done, name)."""
    without_the_new_index(connection, table)
    Index(OLD_INDEX, table.c.status, table.c.date_done).create(connection)


def live_indexes() -> dict[str | None, list[str | None]]:
    database = engine()
    with database.connect() as connection:
        live = inspect(connection).get_indexes(configured_tables().task.name)
    database.dispose()
    return {index["name"]: index["column_names"] for index in live}


@pytest.mark.parametrize(
    ("result_db", "replace"),
    [
        result_db_param(
            "mysqlclient",
            [
                f"ALTER TABLE celery_taskmeta ADD INDEX {NEW_INDEX} (status, date_done, name), "
                "ALGORITHM=INPLACE, LOCK=NONE;",
                f"DROP INDEX {OLD_INDEX} ON celery_taskmeta;",
            ],
        ),
        result_db_param(
            "postgresql",
            [
                f"CREATE INDEX CONCURRENTLY {NEW_INDEX} "
                "ON celery_taskmeta (status, date_done, name);",
                f"DROP INDEX CONCURRENTLY {OLD_INDEX};",
            ],
        ),
        result_db_param(
            "sqlite",
            [
                f"CREATE INDEX {NEW_INDEX} ON celery_taskmeta (status, date_done, name);",
                f"DROP INDEX {OLD_INDEX};",
            ],
        ),
    ],
    indirect=["result_db"],
)
def test_the_index_of_celery_sa_03_is_dropped_once_the_covering_one_is_built(
    result_db: ResultDB, replace: list[str]
) -> None:
    change_indexes(as_celery_sa_03_made_it)
    code, output = manage("status")
    assert code == 1
    assert output.splitlines()[:3] == [
        "celery_taskmeta (about 0 rows): 2 changes pending",
        "  - index on (status, date_done, name) is missing",
        f"  - index {OLD_INDEX} is superseded by the index on (status, date_done, name); drop it",
    ]
    code, dry_run = manage("upgrade", "--dry-run")
    assert dry_run.splitlines()[-3:] == [*replace, "Would apply 2 changes."]
    assert manage("upgrade")[0] == 0
    indexes = live_indexes()
    assert indexes[NEW_INDEX] == ["status", "date_done", "name"]
    assert OLD_INDEX not in indexes
    assert manage("status")[0] == 0
    assert manage("upgrade") == (0, "Nothing to do: the result tables are up to date.\n")


@pytest.mark.parametrize(
    "result_db",
    [result_db_param("mysqlclient"), result_db_param("postgresql"), result_db_param("sqlite")],
    indirect=True,
)
def test_a_users_own_index_on_status_and_date_done_is_never_dropped(
    result_db: ResultDB,
) -> None:
    def users_indexes(connection: Connection, table: Table) -> None:
        without_the_new_index(connection, table)
        # celery_sa's old name on other columns, and the old columns under another name.
        Index(OLD_INDEX, table.c.status, table.c.date_done, table.c.worker).create(connection)
        Index("my_status_date_done", table.c.status, table.c.date_done).create(connection)

    change_indexes(users_indexes)
    code, output = manage("status")
    assert code == 1
    assert output.splitlines()[:2] == [
        "celery_taskmeta (about 0 rows): 1 change pending",
        "  - index on (status, date_done, name) is missing",
    ]
    assert manage("upgrade")[0] == 0
    indexes = live_indexes()
    assert indexes[OLD_INDEX] == ["status", "date_done", "worker"]
    assert indexes["my_status_date_done"] == ["status", "date_done"]
    assert indexes[NEW_INDEX] == ["status", "date_done", "name"]
    assert manage("status")[0] == 0


def test_sql_server_drops_the_old_index_of_its_table() -> None:
    vendor = vendors.get("mssql")
    (old,) = result_tables({}, {"task": "results"}).superseded
    (drop,) = vendor.ddl.drop_index_statements([old.index()])
    assert str(drop.compile(dialect=vendor.offline_dialect("mssql"))).strip() == (
        f"DROP INDEX {OLD_INDEX} ON results.celery_taskmeta"
    )
