"""The result tables as SQLAlchemy ``Table`` objects, with safe types.

Column names, kinds and sequence names are the ones Celery 5.x reads and writes
(``celery.backends.database.models``); the types are widened where Celery's fail in
production: BIGINT ids everywhere, LONGBLOB/LONGTEXT on MySQL/MariaDB, VARBINARY(max)/
NVARCHAR(max) on SQL Server (each database's types: :mod:`celery_sa.sql.vendors`).
Names and schemas are passed in (Django's settings are read by :mod:`celery_sa.conf`, a
worker's by Celery).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as Sequence_
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Sequence,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.mock import MockConnection
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.types import TypeEngine

from celery_sa.sql.vendors import VENDORS

DEFAULT_TABLE_NAMES = {"task": "celery_taskmeta", "group": "celery_tasksetmeta"}
"""Celery's own names, for a key ``database_table_names`` leaves out."""
SEQUENCES = {"task": "task_id_sequence", "group": "taskset_id_sequence"}
CHORD_TABLES = {"chord": "celery_sa_chord", "part": "celery_sa_chord_part"}
"""celery_sa's own tables for native chords (in the task table's schema)."""
MEMBER_TABLE = "celery_sa_group_member"
"""celery_sa's own table of the tasks of each group its backend saves (in the task table's
schema)."""
ATTEMPT_TABLE = "celery_sa_attempt"
"""celery_sa's own table of a task's executions that ended in a retry (in the task table's
schema)."""


def _safe(generic: TypeEngine[Any], kind: str) -> TypeEngine[Any]:
    for vendor in VENDORS:
        variant = vendor.type_variants().get(kind)
        if variant is not None:
            generic = generic.with_variant(variant, *vendor.names)
    return generic


BIGINT_ID = _safe(BigInteger(), "id")
LONG_BLOB = _safe(LargeBinary(), "blob")
LONG_TEXT = _safe(Text(), "text")
PRECISE_TIME = _safe(DateTime(), "time")


@dataclass(frozen=True)
class ResultTables:
    """The task and group tables as configured, and the chord counter, in one ``MetaData``."""

    metadata: MetaData
    task: Table
    group: Table
    chord: Table
    part: Table
    attempt: Table
    member: Table
    superseded: tuple[Superseded, ...] = ()

    def by_key(self) -> dict[str, Table]:
        """The tables by their ``CELERY_DATABASE_TABLE_NAMES`` key."""
        return {"task": self.task, "group": self.group}

    def all(self) -> list[Table]:
        """Every table celery_sa manages, in creation order."""
        return [self.task, self.group, self.chord, self.part, self.attempt, self.member]


@dataclass(frozen=True)
class Superseded:
    """An index an earlier celery_sa version created that a wider one, ``by``, now covers:
    the upgrade drops it once ``by`` exists. Only an index of exactly this name and these
    columns is celery_sa's; any other is the user's and stays."""

    name: str
    columns: tuple[str, ...]
    by: Index

    def index(self) -> Index:
        """The old index, on a stand-in for its table (never part of the tables made), to
        compile its ``DROP INDEX``."""
        table = self.by.table
        assert isinstance(table, Table), "celery_sa's indexes are all on a table"
        stand_in = Table(
            table.name, MetaData(), *(Column(name) for name in self.columns), schema=table.schema
        )
        return Index(self.name, *stand_in.columns)


def result_tables(names: Mapping[str, str], schemas: Mapping[str, str | None]) -> ResultTables:
    """Build the tables for Celery's ``database_table_names``/``…_schemas`` (a key left out:
    Celery's default name, no schema)."""
    metadata = MetaData()
    table = partial(_table, metadata, names, schemas)
    task = table(
        "task",
        Column("task_id", String(155), unique=True),
        Column("status", String(50)),
        Column("result", LONG_BLOB, nullable=True),
        Column("date_done", PRECISE_TIME, nullable=True),
        Column("traceback", LONG_TEXT, nullable=True),
        Column("children", LONG_BLOB, nullable=True),
        Column("name", String(155), nullable=True),
        Column("args", LONG_BLOB, nullable=True),
        Column("kwargs", LONG_BLOB, nullable=True),
        Column("worker", String(155), nullable=True),
        Column("retries", Integer, nullable=True),
        Column("queue", String(155), nullable=True),
        Column("stamps", LONG_BLOB, nullable=True),
        # celery_sa's backend keeps each execution's start here, and the time the task was
        # first sent; Celery's own backend neither reads nor writes them.
        Column("date_started", PRECISE_TIME, nullable=True),
        Column("date_sent", PRECISE_TIME, nullable=True),
    )
    # name last: failures per task name in a time window are read from the index alone.
    by_status = Index(
        f"ix_{task.name}_status_date_done_name", task.c.status, task.c.date_done, task.c.name
    )
    Index(f"ix_{task.name}_name_date_done", task.c.name, task.c.date_done)
    group = table(
        "group",
        Column("taskset_id", String(155), unique=True),
        Column("result", LONG_BLOB, nullable=True),
        Column("date_done", DateTime, nullable=True),
    )
    chord, part = _chord_tables(metadata, schemas.get("task"))
    attempt = _attempt_table(metadata, schemas.get("task"))
    member = _member_table(metadata, schemas.get("task"))
    # celery_sa 0.1 to 0.3 made (status, date_done), a prefix of the new one.
    superseded = Superseded(f"ix_{task.name}_status_date_done", ("status", "date_done"), by_status)
    return ResultTables(
        metadata=metadata,
        task=task,
        group=group,
        chord=chord,
        part=part,
        attempt=attempt,
        member=member,
        superseded=(superseded,),
    )


def _table(
    metadata: MetaData,
    names: Mapping[str, str],
    schemas: Mapping[str, str | None],
    key: str,
    *columns: Column[Any],
) -> Table:
    name = names.get(key) or DEFAULT_TABLE_NAMES[key]
    schema = schemas.get(key) or None
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


def _chord_tables(metadata: MetaData, schema: str | None) -> tuple[Table, Table]:
    # One row per unfinished chord (its size, once the header is sent, its callback, and
    # when and by which header task the callback was claimed), and one per header task
    # that has returned: a redelivered or twice-stored part is the same row, so it is
    # never counted twice.
    chord = Table(
        CHORD_TABLES["chord"],
        metadata,
        Column("group_id", String(155), primary_key=True),
        Column("chord_size", Integer, nullable=True),
        Column("date_created", DateTime, nullable=False),
        Column("date_fired", DateTime, nullable=True),
        # celery_sa 0.4: the claim's owner (a claim whose commit failed is known to be
        # one's own or not) and the callback (the sweep fires a chord whose last part's
        # claim was lost). Nullable: older workers and rows leave them empty.
        Column("claimed_by", String(155), nullable=True),
        Column("callback", LONG_BLOB, nullable=True),
        schema=schema,
    )
    Index(f"ix_{chord.name}_date_created", chord.c.date_created)
    part = Table(
        CHORD_TABLES["part"],
        metadata,
        Column("group_id", String(155), nullable=False),
        Column("task_id", String(155), nullable=False),
        Column("group_index", Integer, nullable=True),
        Column("date_done", DateTime, nullable=False),
        PrimaryKeyConstraint("group_id", "task_id", name=f"pk_{CHORD_TABLES['part']}"),
        schema=schema,
    )
    Index(f"ix_{part.name}_date_done", part.c.date_done)
    return chord, part


def _attempt_table(metadata: MetaData, schema: str | None) -> Table:
    # One row per execution of a task that ended in a retry: the task's name, when it
    # started and ended, and the exception (bounded by the writer). The execution that
    # ended the task is the task's own row. Keyed by the task and the execution's number
    # (request.retries: 0 for the first), so a redelivered retry is written once.
    attempt = Table(
        ATTEMPT_TABLE,
        metadata,
        Column("task_id", String(155), nullable=False),
        Column("attempt", Integer, nullable=False),
        Column("name", String(155), nullable=True),
        Column("status", String(50), nullable=False),
        Column("date_started", PRECISE_TIME, nullable=True),
        Column("date_done", PRECISE_TIME, nullable=False),
        Column("exception", String(155), nullable=True),
        Column("message", LONG_TEXT, nullable=True),
        Column("traceback", LONG_TEXT, nullable=True),
        PrimaryKeyConstraint("task_id", "attempt", name=f"pk_{ATTEMPT_TABLE}"),
        schema=schema,
    )
    # The window's retries by name and exception, from the index alone.
    Index(
        f"ix_{ATTEMPT_TABLE}_date_done_name_exception",
        attempt.c.date_done,
        attempt.c.name,
        attempt.c.exception,
    )
    return attempt


def _member_table(metadata: MetaData, schema: str | None) -> Table:
    # One row per task of a group celery_sa's backend saved (a chord's header included),
    # in the group's order: the admin filters groups by their tasks' states through it,
    # with indexed joins instead of reading each group's stored result. Keyed by the group
    # and the task, so a group saved again is written once; saved at the group's time
    # (naive UTC, as the group table's), by which it expires with its group.
    member = Table(
        MEMBER_TABLE,
        metadata,
        Column("group_id", String(155), nullable=False),
        Column("task_id", String(155), nullable=False),
        Column("group_index", Integer, nullable=False),
        Column("date_done", DateTime, nullable=False),
        PrimaryKeyConstraint("group_id", "task_id", name=f"pk_{MEMBER_TABLE}"),
        schema=schema,
    )
    Index(f"ix_{MEMBER_TABLE}_task_id", member.c.task_id)
    Index(f"ix_{MEMBER_TABLE}_date_done", member.c.date_done)
    return member


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


def id_sequence(table: Table) -> Sequence | None:
    """The sequence Celery draws ``table``'s ids from, where it has one."""
    default = table.c.id.default if "id" in table.c else None
    return default if isinstance(default, Sequence) else None
