"""PostgreSQL: psycopg 3 (or psycopg2) for Celery and for Django."""

from __future__ import annotations

import weakref
import zoneinfo
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.translation import gettext_lazy
from sqlalchemy import Connection, Index, Table, text
from sqlalchemy import Sequence as SequenceSchema
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.ddl import ExecutableDDLElement

from celery_sa.dialects.base import (
    Database,
    Driver,
    Execute,
)
from celery_sa.tables.ddl import AlterTable

PSYCOPG = Driver("psycopg", "psycopg[binary]")
PSYCOPG2 = Driver("psycopg2", "psycopg2-binary")

_default_zones: weakref.WeakKeyDictionary[Any, zoneinfo.ZoneInfo] = weakref.WeakKeyDictionary()


class WidenSequence(ExecutableDDLElement):
    """``ALTER SEQUENCE … AS BIGINT``: a sequence made for an INTEGER column."""

    def __init__(self, sequence: SequenceSchema) -> None:
        self.sequence = sequence


@compiles(WidenSequence)
def _widen_sequence(element: WidenSequence, compiler: Any, **kw: Any) -> str:
    return f"ALTER SEQUENCE {compiler.preparer.format_sequence(element.sequence)} AS BIGINT"


def _concurrently(indexes: list[Index]) -> None:
    for index in indexes:
        # Built and dropped without blocking writers; the upgrade runs each statement in
        # autocommit. The Index belongs to the plan's fresh tables (or a stand-in).
        index.dialect_options["postgresql"]["concurrently"] = True


class PostgreSQL(Database):
    names = ("postgresql",)
    django_engine = "django.db.backends.postgresql"
    django_drivers = (PSYCOPG, PSYCOPG2)
    celery_drivers = {("postgresql", "psycopg"): PSYCOPG, ("postgresql", "psycopg2"): PSYCOPG2}
    default_port = "5432"
    script_advice = gettext_lazy(
        "Run it with psql -v ON_ERROR_STOP=1, and not in one transaction (not -1): CREATE "
        "INDEX CONCURRENTLY cannot run inside one."
    )
    rewrite_note = gettext_lazy("It is rewritten under an exclusive lock: reads and writes wait.")

    def default_drivername(self) -> str:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "postgresql+psycopg2"
        return "postgresql+psycopg"

    def to_django(self, config: dict[str, Any], query: dict[str, str]) -> None:
        if "host" in query:
            config["HOST"] = query.pop("host")
        if "port" in query:
            config["PORT"] = query.pop("port")
        super().to_django(config, query)

    def from_django(
        self, options: dict[str, Any], host: str | None
    ) -> tuple[dict[str, Any], str | None]:
        if host and host.startswith("/"):  # a socket directory
            return {"host": host, **options}, None
        return options, host

    def estimate_rows(self, execute: Execute, schema: str | None, table: str) -> int | None:
        qualified = f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)
        value = execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [qualified]
        )
        # -1: never analysed (or vacuumed) since it was created.
        return None if value is None or value < 0 else int(value)

    def stored_zone(self, connection: BaseDatabaseWrapper, zone: str) -> zoneinfo.ZoneInfo:
        # The driver converts the aware value into the writing session's TimeZone, whatever
        # Celery's zone: the database's default, which Django's own (UTC) sessions can read
        # as reset_val. Asked once per DB-API connection.
        connection.ensure_connection()
        raw = connection.connection
        found = _default_zones.get(raw)
        if found is None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reset_val FROM pg_settings WHERE name = 'TimeZone'")
                name = cursor.fetchone()[0]
            try:
                found = zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                found = zoneinfo.ZoneInfo("UTC")
            _default_zones[raw] = found
        return found

    def alter_statements(self, change: AlterTable) -> list[ExecutableDDLElement]:
        _concurrently(change.indexes)
        return super().alter_statements(change)

    def drop_index_statements(
        self, indexes: list[Index], *, if_exists: bool = False
    ) -> list[ExecutableDDLElement]:
        _concurrently(indexes)
        return super().drop_index_statements(indexes, if_exists=if_exists)

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

    def widen_sequence_statements(
        self, sequence: SequenceSchema, table: Table, next_value: int | None
    ) -> list[ExecutableDDLElement]:
        return [WidenSequence(sequence)]  # it keeps its position

    def on_conflict_insert(self, table: Table) -> Any:
        return postgresql_insert(table)
