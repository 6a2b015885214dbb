"""``manage.py celery_sa_tables create`` and ``sql``, called as commands."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from tests.support.databases import ResultDB, drop_result_tables

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def run(*args: str) -> str:
    out = StringIO()
    call_command("celery_sa_tables", *args, stdout=out)
    return out.getvalue()


def test_create_is_idempotent(result_db: ResultDB) -> None:
    drop_result_tables()
    names = [
        "celery_taskmeta",
        "celery_tasksetmeta",
        "celery_sa_chord",
        "celery_sa_chord_part",
        "celery_sa_attempt",
        "celery_sa_group_member",
    ]
    assert run("create").splitlines() == [f"Created table {name}." for name in names]
    assert run("create").splitlines() == [
        *(f"Table {name} already exists." for name in names),
        "Nothing to do: the result tables exist.",
    ]
    tables = connections[result_db.alias].introspection.table_names()
    assert set(names) <= set(tables)


def test_create_dry_run_prints_sql_and_creates_nothing(embedded_result_db: ResultDB) -> None:
    drop_result_tables()
    output = run("create", "--dry-run")
    assert "CREATE TABLE celery_taskmeta (" in output
    assert output.splitlines()[-2:] == [
        "Would create table celery_sa_attempt.",
        "Would create table celery_sa_group_member.",
    ]
    assert "celery_taskmeta" not in connections["celery_sa"].introspection.table_names()


@pytest.mark.parametrize(
    ("dialect", "fragments"),
    [
        ("mysql", ["id BIGINT NOT NULL AUTO_INCREMENT", "result LONGBLOB", "traceback LONGTEXT"]),
        ("mariadb", ["CREATE SEQUENCE task_id_sequence START WITH 1", "id BIGINT NOT NULL"]),
        ("postgresql", ["CREATE SEQUENCE task_id_sequence START WITH 1", "result BYTEA"]),
        ("sqlite", ["id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT"]),
        ("mssql", ["CREATE SEQUENCE task_id_sequence START WITH 1", "id BIGINT NOT NULL"]),
    ],
)
def test_sql_prints_the_ddl_of_any_dialect_without_connecting(
    dialect: str, fragments: list[str]
) -> None:
    output = run("sql", "--dialect", dialect)
    for fragment in fragments:
        assert fragment in output
    assert "CREATE INDEX ix_celery_taskmeta_date_done ON celery_taskmeta (date_done);" in output
    assert (
        "CREATE INDEX ix_celery_taskmeta_status_date_done_name "
        "ON celery_taskmeta (status, date_done, name);"
    ) in output


def test_an_unknown_dialect_is_refused() -> None:
    with pytest.raises(CommandError, match="invalid choice: 'oracle'"):
        run("sql", "--dialect", "oracle")
