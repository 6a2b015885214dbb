"""PostgreSQL: the SQL celery_sa runs there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Index, Table, text
from sqlalchemy import Sequence as SequenceSchema
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.ddl import ExecutableDDLElement

from celery_sa.sql.ddl import AlterTable
from celery_sa.sql.text import gettext_noop
from celery_sa.sql.vendors.base import DDLRules, Execute, Introspection, Vendor, Writes


class AlterSequenceAsBigint(ExecutableDDLElement):
    """``ALTER SEQUENCE … AS BIGINT``: a sequence made for an INTEGER column."""

    def __init__(self, sequence: SequenceSchema) -> None:
        self.sequence = sequence


@compiles(AlterSequenceAsBigint)
def _alter_sequence_as_bigint(element: AlterSequenceAsBigint, compiler: Any, **kw: Any) -> str:
    return f"ALTER SEQUENCE {compiler.preparer.format_sequence(element.sequence)} AS BIGINT"


def _concurrently(indexes: list[Index]) -> None:
    for index in indexes:
        # Built and dropped without blocking writers; the upgrade runs each statement in
        # autocommit. The Index belongs to the plan's fresh tables (or a stand-in).
        index.dialect_options["postgresql"]["concurrently"] = True


class PostgreSQLDDL(DDLRules):
    script_advice = gettext_noop(
        "Run it with psql -v ON_ERROR_STOP=1, and not in one transaction (not -1): CREATE "
        "INDEX CONCURRENTLY cannot run inside one."
    )
    rewrite_note = gettext_noop("It is rewritten under an exclusive lock: reads and writes wait.")

    def alter_statements(self, change: AlterTable) -> list[ExecutableDDLElement]:
        _concurrently(change.indexes)
        return super().alter_statements(change)

    def drop_index_statements(
        self, indexes: list[Index], *, if_exists: bool = False
    ) -> list[ExecutableDDLElement]:
        _concurrently(indexes)
        return super().drop_index_statements(indexes, if_exists=if_exists)

    def widen_sequence_statements(
        self, sequence: SequenceSchema, table: Table, next_value: int | None
    ) -> list[ExecutableDDLElement]:
        return [AlterSequenceAsBigint(sequence)]  # it keeps its position


class PostgreSQLIntrospection(Introspection):
    def estimate_rows(self, execute: Execute, schema: str | None, table: str) -> int | None:
        value = execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [self.vendor.quote_table(schema, table)],
        )
        # -1: never analysed (or vacuumed) since it was created.
        return None if value is None or value < 0 else int(value)

    def invalid_indexes(self, connection: Connection, table: Table) -> set[str]:
        # What an interrupted CREATE INDEX CONCURRENTLY leaves behind (read from the catalog:
        # SQLAlchemy 2.0's reflection does not tell).
        query = text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = CAST(:table AS regclass) AND NOT i.indisvalid"
        )
        qualified = self.qualified(connection, table.name, table.schema)
        return set(connection.execute(query, {"table": qualified}).scalars())

    def next_sequence_value(self, connection: Connection, sequence: SequenceSchema) -> int | None:
        qualified = self.qualified(connection, sequence.name, sequence.schema)
        row = connection.execute(text(f"SELECT last_value, is_called FROM {qualified}")).one()
        return int(row.last_value) + (1 if row.is_called else 0)

    def sequence_is_bigint(self, connection: Connection, sequence: SequenceSchema) -> bool:
        query = text(
            "SELECT data_type FROM pg_sequences WHERE schemaname = :schema AND sequencename = :name"
        )
        schema = sequence.schema or connection.execute(text("SELECT current_schema()")).scalar_one()
        kind = connection.execute(query, {"schema": schema, "name": sequence.name}).scalar_one()
        return bool(kind == "bigint")


class PostgreSQLWrites(Writes):
    on_conflict_insert = staticmethod(postgresql_insert)


class PostgreSQL(Vendor):
    names = ("postgresql",)
    ddl_class = PostgreSQLDDL
    introspection_class = PostgreSQLIntrospection
    writes_class = PostgreSQLWrites

    def engine_options(self, url: URL, options: Mapping[str, Any]) -> dict[str, Any]:
        found = dict(options)
        if url.get_driver_name() == "psycopg":
            # psycopg 3 prepares a statement on the server after its fifth execution on a
            # connection. Behind a transaction pooler (PgBouncer's pool_mode = transaction)
            # the next transaction may run on another server connection, which does not
            # have it ("prepared statement "_pg3_0" does not exist"). Off, unless the
            # options' connect_args set prepare_threshold themselves.
            found["connect_args"] = {"prepare_threshold": None, **found.get("connect_args", {})}
        return found
