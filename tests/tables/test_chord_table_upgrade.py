"""The chord table as celery_sa 0.2 and 0.3 made it, before it had ``claimed_by`` and
``callback``: brought up to date by ``celery_sa_tables upgrade``, or by the backend through
:mod:`celery_sa.sql.chords`."""

from __future__ import annotations

import re
from datetime import datetime
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
)

from celery_sa.conf import configured_tables
from celery_sa.sql.chords import add_chord_columns, missing_chord_columns
from celery_sa.sql.state import ColumnState, DatabaseState, IndexState, TableState
from celery_sa.sql.vendors import offline_dialect
from celery_sa.tables.scripts import upgrade_sql
from celery_sa.tables.upgrade import plan_upgrade
from tests.support.databases import ResultDB, result_db_param
from tests.support.tables import engine, manage

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

NEW_COLUMNS = ["claimed_by", "callback"]
LIVE_DATABASES = [result_db_param(name) for name in ("sqlite", "mysqlclient", "postgresql")]
CALLBACK = b"\x80" * 100_000
"""A callback larger than MariaDB's BLOB holds (64 KB)."""


def chord_table_of_celery_sa_02() -> Table:
    """``celery_sa_chord`` as celery_sa 0.2 declared it."""
    chord = Table(
        "celery_sa_chord",
        MetaData(),
        Column("group_id", String(155), primary_key=True),
        Column("chord_size", Integer, nullable=True),
        Column("date_created", DateTime, nullable=False),
        Column("date_fired", DateTime, nullable=True),
    )
    Index("ix_celery_sa_chord_date_created", chord.c.date_created)
    return chord


def make_chord_table_of_celery_sa_02() -> None:
    """Replace the live chord table with the one celery_sa 0.2 made."""
    database = engine()
    with database.begin() as connection:
        configured_tables().chord.drop(connection)
        chord_table_of_celery_sa_02().create(connection)
    database.dispose()


def add_unfinished_chord(group_id: str) -> None:
    """A chord an 0.2 worker was counting when the upgrade ran."""
    database = engine()
    with database.begin() as connection:
        connection.execute(
            insert(chord_table_of_celery_sa_02()),
            {"group_id": group_id, "chord_size": 3, "date_created": datetime(2026, 1, 1)},
        )
    database.dispose()


def new_columns(chord: Table) -> list[Column[Any]]:
    return [chord.c[name] for name in NEW_COLUMNS]


def live_chord_columns() -> dict[str, bool]:
    """The live chord table's columns: whether each is nullable, by name, in order."""
    database = engine()
    with database.connect() as connection:
        columns = inspect(connection).get_columns("celery_sa_chord")
    database.dispose()
    return {column["name"]: bool(column["nullable"]) for column in columns}


@pytest.mark.parametrize(
    ("result_db", "alter"),
    [
        result_db_param(
            "sqlite",
            [
                "ALTER TABLE celery_sa_chord ADD COLUMN claimed_by VARCHAR(155);",
                "ALTER TABLE celery_sa_chord ADD COLUMN callback BLOB;",
            ],
        ),
        result_db_param(
            "mysqlclient",
            [
                "ALTER TABLE celery_sa_chord ADD COLUMN claimed_by VARCHAR(155), "
                "ADD COLUMN callback LONGBLOB, ALGORITHM=INPLACE, LOCK=NONE;"
            ],
        ),
        result_db_param(
            "postgresql",
            [
                "ALTER TABLE celery_sa_chord ADD COLUMN claimed_by VARCHAR(155), "
                "ADD COLUMN callback BYTEA;"
            ],
        ),
    ],
    indirect=["result_db"],
)
def test_upgrade_adds_the_new_columns_to_the_chord_table_of_celery_sa_02(
    result_db: ResultDB, alter: list[str]
) -> None:
    make_chord_table_of_celery_sa_02()
    assert manage("status") == (
        1,
        "celery_taskmeta (about 0 rows): up to date\n"
        "celery_tasksetmeta (about 0 rows): up to date\n"
        "celery_sa_chord (about 0 rows): 2 changes pending\n"
        "  - column claimed_by is missing\n"
        "  - column callback is missing\n"
        "celery_sa_chord_part: up to date\n"
        "celery_sa_attempt: up to date\n"
        "celery_sa_group_member: up to date\n"
        "2 changes pending: run `manage.py celery_sa_tables upgrade` (--dry-run shows the SQL).\n",
    )
    problems = [f"celery_sa_chord: column {name} is missing" for name in NEW_COLUMNS]
    assert manage("upgrade", "--dry-run") == (
        0,
        "\n".join([*problems, *alter, "Would apply 2 changes.", ""]),
    )
    assert list(live_chord_columns()) == ["group_id", "chord_size", "date_created", "date_fired"]

    add_unfinished_chord("counting")
    code, output = manage("upgrade")
    assert code == 0
    *lines, upgraded, applied = output.splitlines()
    assert lines == problems
    assert re.fullmatch(r"Upgraded celery_sa_chord: 2 changes in \d+\.\d s\.", upgraded)
    assert applied == "Applied 2 changes."

    columns = live_chord_columns()
    assert list(columns) == [column.name for column in configured_tables().chord.columns]
    assert [columns[name] for name in NEW_COLUMNS] == [True, True]  # nullable
    chord = configured_tables().chord
    database = engine()
    with database.connect() as connection:
        rows = connection.execute(select(chord.c.group_id, chord.c.chord_size, *new_columns(chord)))
        assert rows.all() == [("counting", 3, None, None)]  # the counting chord is kept
    database.dispose()
    assert manage("status")[0] == 0
    assert manage("upgrade") == (0, "Nothing to do: the result tables are up to date.\n")


@pytest.mark.parametrize("result_db", LIVE_DATABASES, indirect=True)
def test_the_backend_adds_the_missing_chord_columns_without_the_command(
    result_db: ResultDB,
) -> None:
    make_chord_table_of_celery_sa_02()
    tables = configured_tables()
    chord = tables.chord
    database = engine()
    with database.begin() as connection:
        missing = missing_chord_columns(connection, tables)
        assert missing == NEW_COLUMNS
        add_chord_columns(connection, tables, missing)
    with database.begin() as connection:
        assert missing_chord_columns(connection, tables) == []
        add_chord_columns(connection, tables, [])  # nothing missing: no statement
        values = {"claimed_by": "task-1", "callback": CALLBACK}
        connection.execute(
            insert(chord), {"group_id": "g", "date_created": datetime(2026, 1, 1), **values}
        )
    with database.connect() as connection:
        stored = connection.execute(select(*new_columns(chord))).one()
    database.dispose()
    assert tuple(stored) == ("task-1", CALLBACK)
    assert manage("status")[0] == 0


def test_sql_server_adds_both_chord_columns_in_one_batch() -> None:
    dialect = offline_dialect("mssql")
    old = chord_table_of_celery_sa_02()
    state = DatabaseState(dialect)
    state.tables["celery_sa_chord"] = TableState(
        columns={c.name: ColumnState(c.type, nullable=bool(c.nullable)) for c in old.columns},
        indexes=(IndexState("ix_celery_sa_chord_date_created", ("date_created",)),),
    )
    plans = {plan.key: plan for plan in plan_upgrade(state, configured_tables())}
    assert [problem.text for problem in plans["chord"].problems] == [
        "column claimed_by is missing",
        "column callback is missing",
    ]
    assert upgrade_sql(plans["chord"], dialect) == [
        "ALTER TABLE celery_sa_chord ADD claimed_by VARCHAR(155) NULL, "
        "callback VARBINARY(max) NULL;\nGO"
    ]


@pytest.mark.parametrize("origin", [[], ["--from", "5.7"]], ids=["create", "from-celery-5.7"])
def test_the_printed_sql_creates_the_chord_table_with_its_new_columns(origin: list[str]) -> None:
    out = StringIO()
    call_command("celery_sa_tables", "sql", "--dialect", "mssql", *origin, stdout=out)
    create = out.getvalue().split("CREATE TABLE celery_sa_chord (\n")[1].split(");")[0]
    assert create.splitlines()[-3:] == [
        "\tclaimed_by VARCHAR(155) NULL, ",
        "\tcallback VARBINARY(max) NULL, ",
        "\tPRIMARY KEY (group_id)",
    ]
