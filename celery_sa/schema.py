"""The result tables as SQLAlchemy ``Table`` objects, with safe types.

Column names, kinds and sequence names are the ones Celery 5.x reads and writes
(``celery.backends.database.models``); the types are widened where Celery's fail in
production: BIGINT ids everywhere and LONGBLOB/LONGTEXT on MySQL/MariaDB.
"""

from __future__ import annotations

from collections.abc import Sequence as Sequence_
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mssql, mysql
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.engine.mock import MockConnection
from sqlalchemy.sql.ddl import ExecutableDDLElement

from celery_sa.conf import app_settings

TASK_SEQUENCE = "task_id_sequence"
GROUP_SEQUENCE = "taskset_id_sequence"

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY (64-bit anyway).
BIGINT_ID = BigInteger().with_variant(Integer(), "sqlite")
LONG_BLOB = (
    LargeBinary()
    .with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
    .with_variant(mssql.VARBINARY(), "mssql")  # type: ignore[no-untyped-call]
)
LONG_TEXT = (
    Text()
    .with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
    .with_variant(mssql.NVARCHAR(), "mssql")
)


@dataclass(frozen=True)
class ResultTables:
    """The task and group tables as configured, in one ``MetaData``."""

    metadata: MetaData
    task: Table
    group: Table


def result_tables() -> ResultTables:
    """Build the tables for the current ``CELERY_DATABASE_TABLE_NAMES``/``…_SCHEMAS``."""
    metadata = MetaData()
    task_name = app_settings.table_name("task")
    task_schema = app_settings.table_schema("task")
    task = Table(
        task_name,
        metadata,
        _id_column(TASK_SEQUENCE, task_schema),
        Column("task_id", String(155), unique=True),
        Column("status", String(50)),
        Column("result", LONG_BLOB, nullable=True),
        Column("date_done", DateTime, nullable=True),
        Column("traceback", LONG_TEXT, nullable=True),
        Column("children", LONG_BLOB, nullable=True),
        Column("name", String(155), nullable=True),
        Column("args", LONG_BLOB, nullable=True),
        Column("kwargs", LONG_BLOB, nullable=True),
        Column("worker", String(155), nullable=True),
        Column("retries", Integer, nullable=True),
        Column("queue", String(155), nullable=True),
        Column("stamps", LONG_BLOB, nullable=True),
        schema=task_schema,
        sqlite_autoincrement=True,
    )
    # Celery's own index name, so tables it created are recognised as indexed.
    Index(f"ix_{task_name}_date_done", task.c.date_done)
    Index(f"ix_{task_name}_status_date_done", task.c.status, task.c.date_done)
    Index(f"ix_{task_name}_name_date_done", task.c.name, task.c.date_done)
    group_name = app_settings.table_name("group")
    group_schema = app_settings.table_schema("group")
    group = Table(
        group_name,
        metadata,
        _id_column(GROUP_SEQUENCE, group_schema),
        Column("taskset_id", String(155), unique=True),
        Column("result", LONG_BLOB, nullable=True),
        Column("date_done", DateTime, nullable=True),
        schema=group_schema,
        sqlite_autoincrement=True,
    )
    Index(f"ix_{group_name}_date_done", group.c.date_done)
    return ResultTables(metadata=metadata, task=task, group=group)


def _id_column(sequence_name: str, schema: str | None) -> Column[int]:
    # Celery inserts with nextval() of this sequence where the database has sequences
    # (PostgreSQL, MariaDB, SQL Server) and relies on AUTO_INCREMENT elsewhere.
    sequence = Sequence(sequence_name, start=1, schema=schema)
    return Column("id", BIGINT_ID, sequence, primary_key=True, autoincrement=True)


def dialect_named(name: str) -> Dialect:
    """A SQLAlchemy dialect for ``name`` (``"mariadb"``, ``"mssql"``, …), without a driver."""
    dialect = URL.create(name).get_dialect()()
    if name == "mariadb":
        # Without a server to ask, assume a MariaDB that has sequences (10.3+).
        dialect.server_version_info = (10, 11)
        dialect._set_mariadb(True, (10, 11))  # type: ignore[attr-defined]
        dialect.supports_sequences = True
    return dialect


def create_statements(
    dialect: Dialect, tables: ResultTables, only: Sequence_[Table] | None = None
) -> list[str]:
    """The DDL that creates ``only`` (default: both tables) on ``dialect``, compiled by
    SQLAlchemy, one statement per item."""
    statements: list[str] = []

    def collect(sql: ExecutableDDLElement, *multiparams: Any, **params: Any) -> None:
        statements.append(str(sql.compile(dialect=dialect)).strip())

    tables.metadata.create_all(MockConnection(dialect, collect), tables=only, checkfirst=False)
    return statements
