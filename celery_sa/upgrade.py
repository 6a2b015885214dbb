"""Compare live result tables with the safe ones in :mod:`celery_sa.schema`; plan the DDL.

The plan is made from what the database says now, every time: a run that stopped half way
is resumed by planning again, and a table already up to date gets no statement at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Index, Sequence, Table, inspect, select, text
from sqlalchemy import func as sql_func
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Inspector
from sqlalchemy.engine.interfaces import ReflectedColumn
from sqlalchemy.schema import CreateIndex, CreateSequence, DropIndex
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.types import TypeEngine

from celery_sa.ddl import AlterTable, RestartSequence, WidenSequence
from celery_sa.schema import ResultTables

# Without these a table is something else that happens to have the configured name.
CORE_COLUMNS = {
    "task": ("id", "task_id", "status", "result", "date_done", "traceback"),
    "group": ("id", "taskset_id", "result", "date_done"),
}
# MySQL/MariaDB types that hold less than Celery may write: name, limit, the safe type.
MYSQL_LIMITS: dict[type[TypeEngine[Any]], tuple[str, str, str]] = {
    mysql.TINYBLOB: ("TINYBLOB", "255 bytes", "LONGBLOB"),
    mysql.BLOB: ("BLOB", "64 KB", "LONGBLOB"),
    mysql.MEDIUMBLOB: ("MEDIUMBLOB", "16 MB", "LONGBLOB"),
    mysql.TINYTEXT: ("TINYTEXT", "255 bytes", "LONGTEXT"),
    mysql.TEXT: ("TEXT", "64 KB", "LONGTEXT"),
    mysql.MEDIUMTEXT: ("MEDIUMTEXT", "16 MB", "LONGTEXT"),
}
INT_LIMIT = "2,147,483,647"


@dataclass(frozen=True)
class Problem:
    """One way a live table differs from the safe one."""

    text: str
    rewrites: bool = False
    """Fixing it rewrites the whole table (slow, and blocks writers, on a large table)."""


@dataclass
class TablePlan:
    """What is wrong with one result table and the statements that fix it."""

    table: Table
    key: str
    exists: bool
    rows: int | None = None
    error: str | None = None
    problems: list[Problem] = field(default_factory=list)
    statements: list[ExecutableDDLElement] = field(default_factory=list)

    @property
    def rewrites(self) -> bool:
        return any(problem.rewrites for problem in self.problems)


def plan_upgrade(connection: Connection, tables: ResultTables) -> list[TablePlan]:
    """Plan both tables against the live database behind ``connection``."""
    inspector = inspect(connection)
    return [
        _plan_table(connection, inspector, table, key)
        for key, table in (("task", tables.task), ("group", tables.group))
    ]


def _plan_table(connection: Connection, inspector: Inspector, table: Table, key: str) -> TablePlan:
    if not inspector.has_table(table.name, schema=table.schema):
        return TablePlan(table=table, key=key, exists=False)
    live = {c["name"]: c for c in inspector.get_columns(table.name, schema=table.schema)}
    plan = TablePlan(table=table, key=key, exists=True, rows=estimate_rows(connection, table))
    missing_core = [name for name in CORE_COLUMNS[key] if name not in live]
    if missing_core:
        plan.error = (
            f"{table.fullname} exists but is not a Celery result table "
            f"(no column {', '.join(missing_core)})."
        )
        return plan
    dialect = connection.dialect.name
    add = [c for c in table.columns if c.name not in live]
    widen = [c for c in table.columns if c.name in live and _narrow(live[c.name], c, dialect)]
    indexes, invalid = _missing_indexes(inspector, table)
    plan.problems += [Problem(f"column {c.name} is missing") for c in add]
    plan.problems += [Problem(_narrow(live[c.name], c, dialect), rewrites=True) for c in widen]
    plan.problems += [
        Problem(
            f"index {index.name} is invalid (an interrupted build); build it again"
            if index in invalid
            else f"index on ({', '.join(c.name for c in index.columns)}) is missing"
        )
        for index in indexes
    ]
    if dialect == "postgresql":
        for index in indexes:
            # Built (and an invalid one dropped) without blocking writers; the upgrade runs
            # each statement in autocommit. The Index belongs to this plan's fresh tables.
            index.dialect_options["postgresql"]["concurrently"] = True
    plan.statements += [DropIndex(index, if_exists=True) for index in invalid]
    plan.statements += _table_statements(
        table, dialect, add, widen, indexes, bool(live["id"].get("autoincrement") is True)
    )
    if connection.dialect.supports_sequences:
        _plan_sequence(connection, inspector, table, plan)
    return plan


def _narrow(live: ReflectedColumn, wanted: Column[Any], dialect: str) -> str:
    """Why the live column is too small for what Celery writes ("" when it is not)."""
    current = live["type"]
    if wanted.name == "id" and dialect != "sqlite" and not isinstance(current, BigInteger):
        return f"column id is {current}: ids stop at {INT_LIMIT}; widen it to BIGINT"
    if dialect in ("mysql", "mariadb") and type(current) in MYSQL_LIMITS:
        name, limit, target = MYSQL_LIMITS[type(current)]
        return f"column {wanted.name} is {name}: values stop at {limit}; widen it to {target}"
    return ""


def _missing_indexes(inspector: Inspector, table: Table) -> tuple[list[Index], list[Index]]:
    """The wanted indexes no live index covers, and those left invalid on PostgreSQL by
    an interrupted ``CREATE INDEX CONCURRENTLY`` (to drop and build again)."""
    live = inspector.get_indexes(table.name, schema=table.schema)
    invalid = {i["name"] for i in live if i.get("dialect_options", {}).get("postgresql_invalid")}
    existing = {tuple(i["column_names"]) for i in live if i["name"] not in invalid}
    existing |= {
        tuple(constraint["column_names"])
        for constraint in inspector.get_unique_constraints(table.name, schema=table.schema)
    }
    wanted = sorted(table.indexes, key=lambda i: str(i.name))
    missing = [
        index
        for index in wanted
        if not any(cols[: len(index.columns)] == tuple(index.columns.keys()) for cols in existing)
    ]
    return missing, [index for index in missing if index.name in invalid]


def _table_statements(
    table: Table,
    dialect: str,
    add: list[Column[Any]],
    widen: list[Column[Any]],
    indexes: list[Index],
    auto_increment: bool,
) -> list[ExecutableDDLElement]:
    if dialect in ("mysql", "mariadb"):
        if not (add or widen or indexes):
            return []
        # Changing a type needs a table copy (reads go on, writes wait); adding columns and
        # indexes does not. One statement, so the table is copied at most once.
        online = "ALGORITHM=COPY, LOCK=SHARED" if widen else "ALGORITHM=INPLACE, LOCK=NONE"
        return [
            AlterTable(
                table,
                add=add,
                widen=widen,
                indexes=indexes,
                keep_auto_increment=auto_increment,
                mysql_online=online,
            )
        ]
    statements: list[ExecutableDDLElement] = []
    if dialect == "sqlite":
        statements += [AlterTable(table, add=[column]) for column in add]
    elif add or widen:
        statements.append(AlterTable(table, add=add, widen=widen))
    statements += [CreateIndex(index) for index in indexes]
    return statements


def _plan_sequence(
    connection: Connection, inspector: Inspector, table: Table, plan: TablePlan
) -> None:
    sequence = table.c.id.default
    if not isinstance(sequence, Sequence):
        return
    max_id = connection.execute(select(sql_func.max(table.c.id))).scalar() or 0
    if not inspector.has_sequence(sequence.name, schema=sequence.schema):
        start = max_id + 1
        plan.problems.append(
            Problem(
                f"sequence {sequence.name} is missing (Celery draws ids from it on this "
                f"database); create it to start at {start:,}"
            )
        )
        plan.statements.append(
            CreateSequence(Sequence(sequence.name, start=start, schema=sequence.schema))
        )
        return
    next_value = _next_sequence_value(connection, sequence)
    if next_value is not None and next_value <= max_id:
        plan.problems.append(
            Problem(
                f"sequence {sequence.name} would hand out {next_value:,}, but ids up to "
                f"{max_id:,} are taken; restart it at {max_id + 1:,}"
            )
        )
        plan.statements.append(RestartSequence(sequence, max_id + 1))
    if (
        connection.dialect.name == "postgresql"
        and _pg_sequence_type(connection, sequence) != "bigint"
    ):
        plan.problems.append(Problem(f"sequence {sequence.name} is INTEGER; widen it to BIGINT"))
        plan.statements.append(WidenSequence(sequence))


def _qualified(connection: Connection, name: str, schema: str | None) -> str:
    preparer = connection.dialect.identifier_preparer
    quoted = preparer.quote(name)
    return f"{preparer.quote_schema(schema)}.{quoted}" if schema else quoted


def _next_sequence_value(connection: Connection, sequence: Sequence) -> int | None:
    qualified = _qualified(connection, sequence.name, sequence.schema)
    dialect = connection.dialect.name
    if dialect == "postgresql":
        row = connection.execute(text(f"SELECT last_value, is_called FROM {qualified}")).one()
        return int(row.last_value) + (1 if row.is_called else 0)
    if dialect in ("mysql", "mariadb"):
        return int(
            connection.execute(text(f"SELECT next_not_cached_value FROM {qualified}")).scalar_one()
        )
    return None


def _pg_sequence_type(connection: Connection, sequence: Sequence) -> str:
    query = text(
        "SELECT data_type FROM pg_sequences WHERE schemaname = :schema AND sequencename = :name"
    )
    schema = sequence.schema or connection.execute(text("SELECT current_schema()")).scalar_one()
    return str(connection.execute(query, {"schema": schema, "name": sequence.name}).scalar_one())


def estimate_rows(connection: Connection, table: Table) -> int | None:
    """The database's own estimate of the row count (no full scan), or None."""
    dialect = connection.dialect.name
    if dialect in ("mysql", "mariadb"):
        query = text(
            "SELECT TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :name"
        )
        value = connection.execute(query, {"schema": table.schema, "name": table.name}).scalar()
    elif dialect == "postgresql":
        qualified = _qualified(connection, table.name, table.schema)
        query = text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:name)")
        value = connection.execute(query, {"name": qualified}).scalar()
        if value is not None and value < 0:  # never analysed
            value = connection.execute(select(sql_func.count()).select_from(table)).scalar()
    elif dialect == "sqlite":
        value = connection.execute(select(sql_func.count()).select_from(table)).scalar()
    else:
        return None
    return int(value) if value is not None else None
