"""The result tables as SQLAlchemy ``Table`` objects, with safe types.

Column names, kinds and sequence names are the ones Celery 5.x reads and writes
(``celery.backends.database.models``); the types are widened where Celery's fail in
production: BIGINT ids everywhere, LONGBLOB/LONGTEXT on MySQL/MariaDB, VARBINARY(max)/
NVARCHAR(max) on SQL Server (each database's types: :mod:`celery_sa.dialects`).
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
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.mock import MockConnection
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.types import TypeEngine

from celery_sa.conf import app_settings
from celery_sa.dialects import DATABASES

SEQUENCES = {"task": "task_id_sequence", "group": "taskset_id_sequence"}


def _safe(generic: TypeEngine[Any], kind: str) -> TypeEngine[Any]:
    for database in DATABASES:
        variant = database.type_variants().get(kind)
        if variant is not None:
            generic = generic.with_variant(variant, *database.names)
    return generic


BIGINT_ID = _safe(BigInteger(), "id")
LONG_BLOB = _safe(LargeBinary(), "blob")
LONG_TEXT = _safe(Text(), "text")


@dataclass(frozen=True)
class ResultTables:
    """The task and group tables as configured, in one ``MetaData``."""

    metadata: MetaData
    task: Table
    group: Table

    def by_key(self) -> dict[str, Table]:
        """The tables by their ``CELERY_DATABASE_TABLE_NAMES`` key."""
        return {"task": self.task, "group": self.group}


def result_tables() -> ResultTables:
    """Build the tables for the current ``CELERY_DATABASE_TABLE_NAMES``/``…_SCHEMAS``."""
    metadata = MetaData()
    task = _table(
        metadata,
        "task",
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
    )
    Index(f"ix_{task.name}_status_date_done", task.c.status, task.c.date_done)
    Index(f"ix_{task.name}_name_date_done", task.c.name, task.c.date_done)
    group = _table(
        metadata,
        "group",
        Column("taskset_id", String(155), unique=True),
        Column("result", LONG_BLOB, nullable=True),
        Column("date_done", DateTime, nullable=True),
    )
    return ResultTables(metadata=metadata, task=task, group=group)


def _table(metadata: MetaData, key: str, *columns: Column[Any]) -> Table:
    name = app_settings.table_name(key)
    schema = app_settings.table_schema(key)
    # Celery inserts with nextval() of this sequence where the database has sequences
    # (PostgreSQL, MariaDB, SQL Server) and relies on AUTO_INCREMENT elsewhere.
    sequence = Sequence(SEQUENCES[key], start=1, schema=schema)
    table = Table(
        name,
        metadata,
        Column("id", BIGINT_ID, sequence, primary_key=True, autoincrement=True),
        *columns,
        schema=schema,
        sqlite_autoincrement=True,
    )
    # Celery's own index name, so tables it created are recognised as indexed.
    Index(f"ix_{name}_date_done", table.c.date_done)
    return table


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
