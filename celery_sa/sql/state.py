"""What the result tables are now, as the upgrade plans from it: read from a live database
(:func:`read_state`), or known from the Celery version that created them
(:mod:`celery_sa.tables.origins`), where the figures a live database would tell (rows, the
highest id, a sequence's position) are unknown and the SQL reads them itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Sequence, Table, inspect, select, text
from sqlalchemy import func as sql_func
from sqlalchemy.engine import Dialect, Inspector
from sqlalchemy.types import TypeEngine

from celery_sa import dialects
from celery_sa.dialects.base import Database
from celery_sa.tables.schema import ResultTables


@dataclass(frozen=True)
class ColumnState:
    type: TypeEngine[Any]
    nullable: bool = True
    auto_increment: bool = False
    """MySQL's AUTO_INCREMENT (kept when the column is widened)."""
    identity: bool = False
    """SQL Server's IDENTITY (SQLAlchemy before 1.4 made Celery's ids so)."""


@dataclass(frozen=True)
class IndexState:
    name: str | None
    columns: tuple[str, ...]
    unique: bool = False
    valid: bool = True
    """False: left unusable by an interrupted build (PostgreSQL), to drop and build again."""


@dataclass(frozen=True)
class SequenceState:
    next_value: int | None = None
    """What it hands out next; None where that is not known."""
    bigint: bool = True


@dataclass(frozen=True)
class TableState:
    columns: dict[str, ColumnState]
    indexes: tuple[IndexState, ...] = ()
    rows: int | None = None
    max_id: int | None = None
    """The highest id; None where it is not known (then the SQL reads it)."""


@dataclass(frozen=True)
class DatabaseState:
    """The result tables and sequences that exist, by ``Table.fullname``/(schema, name)."""

    dialect: Dialect
    tables: dict[str, TableState] = field(default_factory=dict)
    sequences: dict[tuple[str | None, str], SequenceState] = field(default_factory=dict)

    @property
    def database(self) -> Database:
        database = dialects.by_name(self.dialect.name)
        if database is None:
            raise LookupError(f"celery_sa does not support {self.dialect.name!r}")
        return database

    def table(self, table: Table) -> TableState | None:
        return self.tables.get(table.fullname)

    def sequence(self, sequence: Sequence) -> SequenceState | None:
        return self.sequences.get((sequence.schema, sequence.name))


def id_sequence(table: Table) -> Sequence | None:
    """The sequence Celery draws ``table``'s ids from, where it has one."""
    default = table.c.id.default if "id" in table.c else None
    return default if isinstance(default, Sequence) else None


def read_state(connection: Connection, tables: ResultTables) -> DatabaseState:
    """The result tables as the database behind ``connection`` has them now."""
    state = DatabaseState(connection.dialect)
    database = state.database
    inspector = inspect(connection)
    for table in tables.by_key().values():
        if inspector.has_table(table.name, schema=table.schema):
            state.tables[table.fullname] = _read_table(connection, inspector, database, table)
    # The chord tables are celery_sa's own and only ever made whole: present is all there is.
    for table in (tables.chord, tables.part):
        if inspector.has_table(table.name, schema=table.schema):
            state.tables[table.fullname] = TableState(columns={})
    if not connection.dialect.supports_sequences:
        return state
    for table in tables.by_key().values():
        sequence = id_sequence(table)
        if sequence is not None and inspector.has_sequence(sequence.name, sequence.schema):
            state.sequences[(sequence.schema, sequence.name)] = SequenceState(
                next_value=database.next_sequence_value(connection, sequence),
                bigint=database.sequence_is_bigint(connection, sequence),
            )
    return state


def _read_table(
    connection: Connection, inspector: Inspector, database: Database, table: Table
) -> TableState:
    name, schema = table.name, table.schema
    columns = {
        column["name"]: ColumnState(
            type=column["type"],
            nullable=bool(column["nullable"]),
            auto_increment=column.get("autoincrement") is True,
            identity=bool(column.get("identity")),
        )
        for column in inspector.get_columns(name, schema=schema)
    }
    invalid = database.invalid_indexes(connection, table)
    indexes = [
        IndexState(
            index["name"],
            tuple(str(c) for c in index["column_names"]),
            bool(index["unique"]),
            index["name"] not in invalid,
        )
        for index in inspector.get_indexes(name, schema=schema)
    ]
    indexes += [
        IndexState(constraint["name"], tuple(constraint["column_names"]), unique=True)
        for constraint in inspector.get_unique_constraints(name, schema=schema)
    ]
    max_id = None
    if "id" in columns and "id" in table.c and connection.dialect.supports_sequences:
        max_id = connection.execute(select(sql_func.max(table.c.id))).scalar() or 0
    return TableState(
        columns=columns,
        indexes=tuple(indexes),
        rows=count_rows(connection, database, table),
        max_id=max_id,
    )


def count_rows(connection: Connection, database: Database, table: Table) -> int:
    """The table statistics' row count where the database keeps one, else ``COUNT(*)``."""

    def execute(sql: str, params: Any) -> Any:
        # %s placeholders, whatever the driver's own style (pyodbc's is ?).
        names = [f"p{n}" for n in range(len(params))]
        statement = text(sql % tuple(f":{name}" for name in names))
        return connection.execute(statement, dict(zip(names, params, strict=True))).scalar()

    estimate = database.estimate_rows(execute, table.schema, table.name)
    if estimate is not None:
        return estimate
    return int(connection.execute(select(sql_func.count()).select_from(table)).scalar_one())
