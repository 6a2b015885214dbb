"""What celery_sa needs to know about a kind of database, with the answers most share.

Each supported database has one subclass in a module of its own; a new database, or a new
per-database need, is an edit there (and, for a need, a default here).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from django.db.backends.base.base import BaseDatabaseWrapper
from sqlalchemy import Column, Connection, Index, Table
from sqlalchemy import Sequence as SequenceSchema
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.schema import CreateIndex, DropIndex
from sqlalchemy.sql import ColumnElement, Executable
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.types import TypeEngine

from celery_sa.errors import translated as _
from celery_sa.tables.ddl import AlterTable

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

    from celery_sa.tables.state import ColumnState

INT_LIMIT = "2,147,483,647"
PLAIN_DISTINCT = "SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL"
"""For optimizers that skip along an index by themselves (MySQL's "index for group-by")."""

Execute = Callable[[str, Sequence[Any]], Any]
"""Runs one SQL statement with ``%s`` parameters and returns its first value (or None)."""


@dataclass(frozen=True)
class Driver:
    """A Python module that must be importable, and the pip package that provides it."""

    module: str
    package: str


class Database:
    """One kind of database, as SQLAlchemy (Celery's side) and Django (the admin's) see it."""

    names: ClassVar[tuple[str, ...]]
    """SQLAlchemy's backend names for it (``URL.get_backend_name()``), the first the main one."""
    django_engine: ClassVar[str]
    """The ``ENGINE`` of Django's backend for it."""
    django_drivers: ClassVar[tuple[Driver, ...]]
    """What Django's backend imports (any one of them will do)."""
    celery_drivers: ClassVar[dict[tuple[str, str], Driver]]
    """What Celery's engine imports, by (backend name, SQLAlchemy driver name)."""
    default_port: ClassVar[str] = ""
    single_writer: ClassVar[bool] = False
    """Only one transaction may write at a time, so parallel deletes would only wait."""
    byte_length_function: ClassVar[str] = "LENGTH"
    """The SQL function that gives a binary value's size in bytes."""
    # How SQLAlchemy before 1.4 made Celery's ids (celery_sa.tables.origins).
    old_sqlalchemy_sequences: ClassVar[bool] = True
    """It created Celery's sequences here (where the database has them)."""
    old_sqlalchemy_identity: ClassVar[bool] = False
    """It made Celery's ids IDENTITY columns instead."""
    auto_increment_ids: ClassVar[bool] = False
    """Ids without a sequence are the database's own AUTO_INCREMENT."""
    sequences_may_start_at_minimum: ClassVar[bool] = False
    """A sequence created without START WITH starts at its type's minimum."""
    restarts_in_sql: ClassVar[bool] = False
    """A sequence is moved past the ids by a statement that reads them when it runs (a
    batch can), not by a number read before."""
    # Printed by celery_sa_tables (with Django set up), never in a worker: translatable.
    rewrite_note: ClassVar[str | _StrPromise] = ""
    script_advice: ClassVar[str | _StrPromise] = ""
    """How to run an upgrade script here."""
    """What a table rewrite (widening a type) blocks while it runs."""
    batch_separator: ClassVar[str] = ""  # a line that ends a batch in scripts (SQL Server: GO)

    @property
    def name(self) -> str:
        return self.names[0]

    # -- URLs: Celery's SQLAlchemy URL <-> Django's DATABASES entry ----------------------

    def default_drivername(self) -> str:
        """The SQLAlchemy driver for a URL made from a Django entry: the one Django uses,
        which is SQLAlchemy's default for the database."""
        return f"{self.name}+{self.offline_dialect(self.name).driver}"

    def to_django(self, config: dict[str, Any], query: dict[str, str]) -> None:
        """Move the URL's query options into the Django entry ``config``."""
        config["OPTIONS"].update(query)

    def from_django(
        self, options: dict[str, Any], host: str | None
    ) -> tuple[dict[str, Any], str | None]:
        """The URL query and host of a Django entry's ``OPTIONS`` and ``HOST``."""
        return options, host

    def identity(self, config: dict[str, Any]) -> tuple[str, ...]:
        """What makes two Django entries of this database the same database."""
        host = str(config.get("HOST") or "") or "localhost"
        port = str(config.get("PORT") or "") or self.default_port
        return (self.name, host, port, str(config.get("NAME") or ""))

    # -- reading -------------------------------------------------------------------------

    def quote(self, identifier: str) -> str:
        """``identifier`` quoted as SQLAlchemy's dialect quotes it, always."""
        return str(self._preparer.quote_identifier(identifier))

    @cached_property
    def _preparer(self) -> Any:
        return self.offline_dialect(self.name).identifier_preparer

    def estimate_rows(self, execute: Execute, schema: str | None, table: str) -> int | None:
        """The table statistics' row count (no scan), or None where there are none."""
        return None

    distinct_sql: ClassVar[str] = (
        "WITH RECURSIVE found (value) AS ("
        "SELECT MIN({column}) FROM {table} "
        "UNION ALL SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > found.value) "
        "FROM found WHERE found.value IS NOT NULL"
        ") SELECT value FROM found WHERE value IS NOT NULL"
    )
    """The distinct non-NULL values of an indexed column, one index seek each (a loose index
    scan, as PostgreSQL's wiki writes it): a plain DISTINCT reads the whole index there."""

    def distinct_values(
        self, connection: BaseDatabaseWrapper, table: str, column: str
    ) -> list[Any]:
        """The distinct non-NULL values of ``table``'s indexed ``column``, cheaply."""
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(self.distinct_sql.format(table=quote(table), column=quote(column)))
            return [value for (value,) in cursor.fetchall()]

    def stored_zone(self, connection: BaseDatabaseWrapper, zone: str) -> zoneinfo.ZoneInfo:
        """The zone of the naive times a Celery worker wrote in ``zone``."""
        return zoneinfo.ZoneInfo(zone)

    def datetime_param(self, value: datetime, connection: BaseDatabaseWrapper) -> Any:
        """A naive datetime as a query parameter compared with Celery's stored values."""
        return connection.ops.adapt_datetimefield_value(value)

    # -- the result tables -------------------------------------------------------------

    def offline_dialect(self, name: str) -> Dialect:
        """SQLAlchemy's dialect ``name`` without a driver or a server, to compile DDL."""
        dialect: Dialect = URL.create(name).get_dialect()()
        return dialect

    def type_variants(self) -> dict[str, TypeEngine[Any]]:
        """Safe column types where SQLAlchemy's generic ones are too small here: by the
        kind of column (``"id"``, ``"blob"``, ``"text"``, ``"time"``)."""
        return {}

    def too_narrow(self, live: ColumnState, column: Column[Any]) -> str:
        """Why a column as it is holds less than Celery writes ("" when it does not)."""
        found = self.type_name(live.type)
        # By name: a type read from the database, or one a Celery model declares for it.
        if column.name == "id" and not found.startswith("BIGINT"):
            # Translators: type is a database type such as INTEGER; limit a number.
            return _("column id is %(type)s: ids stop at %(limit)s; widen it to BIGINT") % {
                "type": found.split("(")[0],  # without MySQL's display width
                "limit": INT_LIMIT,
            }
        return ""

    def less_precise(self, live: ColumnState, column: Column[Any]) -> str:
        """Why a column as it is keeps less precision than celery_sa's ("" when it does
        not): changed only when the table is rewritten for another reason."""
        return ""

    def type_name(self, type_: TypeEngine[Any]) -> str:
        """``type_`` as this database writes it (``INTEGER``, ``VARBINARY(max)``)."""
        return str(type_.compile(dialect=self.offline_dialect(self.name)))

    def alter_statements(self, change: AlterTable) -> list[ExecutableDDLElement]:
        """The statements that make ``change`` (columns to add, types to widen, indexes
        to build) on a live table: one ``ALTER TABLE``, then each index on its own."""
        statements: list[ExecutableDDLElement] = []
        if change.add or change.widen:
            statements.append(AlterTable(change.table, add=change.add, widen=change.widen))
        return statements + [CreateIndex(index) for index in change.indexes]

    def drop_index_statements(
        self, indexes: list[Index], *, if_exists: bool = False
    ) -> list[ExecutableDDLElement]:
        """The statements that drop ``indexes`` of a live table, each on its own."""
        return [DropIndex(index, if_exists=if_exists) for index in indexes]

    def invalid_indexes(self, connection: Connection, table: Table) -> set[str]:
        """The names of ``table``'s indexes that exist but the database does not use."""
        return set()

    def next_sequence_value(self, connection: Connection, sequence: SequenceSchema) -> int | None:
        """What the sequence hands out next, where that can be read without using it."""
        return None

    def sequence_is_bigint(self, connection: Connection, sequence: SequenceSchema) -> bool:
        """Whether the live sequence counts in BIGINT."""
        return True

    def widen_sequence_statements(
        self, sequence: SequenceSchema, table: Table, next_value: int | None
    ) -> list[ExecutableDDLElement]:
        """The statements that make an INTEGER sequence of ``table``'s ids BIGINT, handing
        out ``next_value`` next (where it is known)."""
        raise NotImplementedError(f"{self.name} has no INTEGER sequences to widen")

    def run_ddl(self, connection: Connection, statement: ExecutableDDLElement) -> None:
        """Run one planned statement on ``connection`` (in autocommit)."""
        connection.execute(statement)

    def qualified(self, connection: Connection, name: str, schema: str | None) -> str:
        """``schema.name`` quoted by the connection's dialect."""
        preparer = connection.dialect.identifier_preparer
        quoted = preparer.quote(name)
        return f"{preparer.quote_schema(schema)}.{quoted}" if schema else quoted

    # -- writing (celery_sa's result backend) --------------------------------------------

    def on_conflict_insert(self, table: Table) -> Any:
        """An ``INSERT`` that takes ``ON CONFLICT`` (PostgreSQL's and SQLite's): the upserts
        below are built on it; databases without one override them instead."""
        raise NotImplementedError(f"no upsert for {self.name}")

    def upsert(
        self,
        table: Table,
        values: dict[str, Any],
        key: str,
        keep: ColumnElement[bool] | None = None,
    ) -> Executable:
        """One statement that inserts ``values``, or, where a row with the same unique
        ``key`` exists, sets it to them, unless ``keep`` is true of that row. Ids still come
        from the table's sequence where it has one."""
        statement = self.on_conflict_insert(table).values(values)
        update = {name: statement.excluded[name] for name in values if name != key}
        where = None if keep is None else ~keep
        return statement.on_conflict_do_update(index_elements=[key], set_=update, where=where)  # type: ignore[no-any-return]

    def insert_missing(self, table: Table, values: dict[str, Any]) -> Executable:
        """One statement that inserts ``values`` unless their primary key exists."""
        return self.on_conflict_insert(table).values(values).on_conflict_do_nothing()  # type: ignore[no-any-return]
