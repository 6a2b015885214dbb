"""Reading the result tables and sequences a live database has: the state the upgrade plans
from (:mod:`celery_sa.sql.state`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, inspect, select, text
from sqlalchemy import func as sql_func
from sqlalchemy.engine import Inspector

from celery_sa.sql import vendors
from celery_sa.sql.schema import ResultTables, id_sequence
from celery_sa.sql.state import ColumnState, DatabaseState, IndexState, SequenceState, TableState
from celery_sa.sql.vendors import Vendor


def read_state(connection: Connection, tables: ResultTables) -> DatabaseState:
    """The result tables as the database behind ``connection`` has them now."""
    state = DatabaseState(connection.dialect)
    vendor = vendors.get(connection.dialect.name)
    inspector = inspect(connection)
    for table in (*tables.by_key().values(), tables.chord):
        if inspector.has_table(table.name, schema=table.schema):
            state.tables[table.fullname] = _read_table(connection, inspector, vendor, table)
    # Present is all there is to know of these.
    for whole in made_whole(tables).values():
        if inspector.has_table(whole.name, schema=whole.schema):
            state.tables[whole.fullname] = TableState(columns={})
    if not connection.dialect.supports_sequences:
        return state
    for table in tables.by_key().values():
        sequence = id_sequence(table)
        if sequence is not None and inspector.has_sequence(sequence.name, sequence.schema):
            state.sequences[(sequence.schema, sequence.name)] = SequenceState(
                next_value=vendor.introspection.next_sequence_value(connection, sequence),
                bigint=vendor.introspection.sequence_is_bigint(connection, sequence),
            )
    return state


def made_whole(tables: ResultTables) -> dict[str, Table]:
    """celery_sa's tables that are only ever made whole, by key: present or missing, never
    upgraded column by column."""
    return {"part": tables.part, "attempt": tables.attempt, "member": tables.member}


def _read_table(
    connection: Connection, inspector: Inspector, vendor: Vendor, table: Table
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
    invalid = vendor.introspection.invalid_indexes(connection, table)
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
        rows=count_rows(connection, vendor, table),
        max_id=max_id,
    )


def count_rows(connection: Connection, vendor: Vendor, table: Table) -> int:
    """The table statistics' row count where the database keeps one, else ``COUNT(*)``."""

    def execute(sql: str, params: Any) -> Any:
        # %s placeholders, whatever the driver's own style (pyodbc's is ?).
        names = [f"p{n}" for n in range(len(params))]
        statement = text(sql % tuple(f":{name}" for name in names))
        return connection.execute(statement, dict(zip(names, params, strict=True))).scalar()

    estimate = vendor.introspection.estimate_rows(execute, table.schema, table.name)
    if estimate is not None:
        return estimate
    return int(connection.execute(select(sql_func.count()).select_from(table)).scalar_one())
