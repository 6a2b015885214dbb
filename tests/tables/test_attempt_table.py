"""The attempt table, celery_sa's own: missing where the tables predate it, made whole by
``celery_sa_tables upgrade`` (or ``create``), and in every script ``sql`` prints."""

from __future__ import annotations

from datetime import datetime
from io import StringIO

import pytest
from django.core.management import call_command
from sqlalchemy import insert, select

from celery_sa.conf import configured_tables
from tests.support.databases import ResultDB, result_db_param
from tests.support.tables import engine, manage

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

LIVE_DATABASES = [result_db_param(name) for name in ("sqlite", "mysqlclient", "postgresql")]
UP_TO_DATE = (
    "celery_taskmeta (about 0 rows): up to date\n"
    "celery_tasksetmeta (about 0 rows): up to date\n"
    "celery_sa_chord (about 0 rows): up to date\n"
    "celery_sa_chord_part: up to date\n"
)
CREATE_INDEX = (
    "CREATE INDEX ix_celery_sa_attempt_date_done_name_exception "
    "ON celery_sa_attempt (date_done, name, exception);"
)


def drop_attempt_table() -> None:
    """The tables as a deployment upgraded before the attempt table existed has them."""
    database = engine()
    with database.begin() as connection:
        configured_tables().attempt.drop(connection)
    database.dispose()


@pytest.mark.parametrize("result_db", LIVE_DATABASES, indirect=True)
def test_a_missing_attempt_table_is_reported_and_created_by_upgrade(result_db: ResultDB) -> None:
    drop_attempt_table()
    assert manage("status") == (
        1,
        f"{UP_TO_DATE}"
        "celery_sa_attempt: missing (create or upgrade creates it)\n"
        "celery_sa_group_member: up to date\n"
        "1 change pending: run `manage.py celery_sa_tables upgrade` (--dry-run shows the SQL).\n",
    )
    code, dry_run = manage("upgrade", "--dry-run")
    assert code == 0
    assert dry_run.startswith("CREATE TABLE celery_sa_attempt (\n")
    assert dry_run.splitlines()[-3:] == [
        CREATE_INDEX,
        "Would create table celery_sa_attempt.",
        "Would apply 1 change.",
    ]
    assert manage("status")[0] == 1  # the dry run made nothing

    assert manage("upgrade") == (0, "Created table celery_sa_attempt.\nApplied 1 change.\n")
    assert manage("status") == (
        0,
        f"{UP_TO_DATE}celery_sa_attempt: up to date\ncelery_sa_group_member: up to date\n"
        "The result tables are up to date.\n",
    )
    assert manage("upgrade") == (0, "Nothing to do: the result tables are up to date.\n")
    # Made whole: the backend's rows fit, one per task and attempt.
    attempt = configured_tables().attempt
    row = {"status": "RETRY", "date_done": datetime(2026, 1, 2, 3, 4, 5), "exception": "Boom"}
    database = engine()
    with database.begin() as connection:
        connection.execute(insert(attempt), [{"task_id": "t", "attempt": n, **row} for n in (0, 1)])
    with database.connect() as connection:
        stored = connection.execute(select(attempt.c.task_id, attempt.c.attempt)).all()
    database.dispose()
    assert sorted(stored) == [("t", 0), ("t", 1)]


def test_create_makes_a_missing_attempt_table_beside_existing_ones(
    embedded_result_db: ResultDB,
) -> None:
    drop_attempt_table()
    out = StringIO()
    call_command("celery_sa_tables", "create", stdout=out)
    assert out.getvalue().splitlines()[-1] == "Created table celery_sa_attempt."
    assert manage("status")[0] == 0


@pytest.mark.parametrize("dialect", ["mariadb", "mysql", "postgresql", "sqlite", "mssql"])
@pytest.mark.parametrize("origin", [[], ["--from", "5.7"]], ids=["create", "from-celery-5.7"])
def test_the_printed_sql_creates_the_attempt_table_and_its_index(
    dialect: str, origin: list[str]
) -> None:
    out = StringIO()
    call_command("celery_sa_tables", "sql", "--dialect", dialect, *origin, stdout=out)
    printed = out.getvalue()
    create = printed.split("CREATE TABLE celery_sa_attempt (\n")[1].split(");")[0]
    columns = [line.split()[0] for line in create.splitlines()[:-1]]
    assert columns == [column.name for column in configured_tables().attempt.columns]
    assert create.splitlines()[-1].strip() == (
        "CONSTRAINT pk_celery_sa_attempt PRIMARY KEY (task_id, attempt)"
    )
    assert CREATE_INDEX in printed
    if origin:
        assert "-- celery_sa_attempt: missing" in printed.splitlines()
