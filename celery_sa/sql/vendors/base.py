"""What celery_sa's SQL needs to know about a kind of database, with the answers most share.

As Django splits a database backend, a :class:`Vendor` holds the facts (its names, types and
features) and three parts, each for one reader: :class:`DDLRules` for the upgrade
planner (which types are too narrow, how to alter a table), :class:`Introspection` for
reading a live database's tables and sequences, :class:`Writes` for the result backend's
upserts. Each database subclasses what differs in a module of its own. Nothing here imports
Django: a Celery worker runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import Column, Connection, Index, Table
from sqlalchemy import Sequence as SequenceSchema
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.schema import CreateIndex, DropIndex
from sqlalchemy.sql import ColumnElement, Executable
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.types import TypeEngine

from celery_sa.sql.ddl import AlterTable
from celery_sa.sql.text import Message, gettext_noop

if TYPE_CHECKING:
    from celery_sa.sql.state import ColumnState

INT_LIMIT = "2,147,483,647"

Row = dict[str, Any]
"""A row's values by column name."""
Keep = ColumnElement[bool] | None
"""A condition on the existing row under which an upsert leaves it as it is."""

Execute = Callable[[str, Sequence[Any]], Any]
"""Runs one SQL statement with ``%s`` parameters and returns its first value (or None)."""


class Vendor:
    """One kind of database: its names, types and features, and its parts."""

    names: ClassVar[tuple[str, ...]]
    """SQLAlchemy's backend names for it (``URL.get_backend_name()``), the first the main one."""
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

    ddl_class: ClassVar[type[DDLRules]]
    introspection_class: ClassVar[type[Introspection]]
    writes_class: ClassVar[type[Writes]]

    def __init__(self) -> None:
        self.ddl = self.ddl_class(self)
        self.introspection = self.introspection_class(self)
        self.writes = self.writes_class(self)

    @property
    def name(self) -> str:
        return self.names[0]

    def offline_dialect(self, name: str) -> Dialect:
        """SQLAlchemy's dialect ``name`` without a driver or a server, to compile DDL."""
        dialect: Dialect = URL.create(name).get_dialect()()
        self.assume_server(dialect, name)
        return dialect

    def engine_options(self, url: URL, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` for ``create_engine(url)`` with what celery_sa's engines (the result
        backend's, SessionTask's) need on this database; the options given win."""
        return dict(options)

    def assume_server(self, dialect: Dialect, name: str) -> None:
        """Set up ``dialect`` as connecting to a server would (features it asks the
        server about), for a server celery_sa supports."""

    def type_variants(self) -> dict[str, TypeEngine[Any]]:
        """Safe column types where SQLAlchemy's generic ones are too small here: by the
        kind of column (``"id"``, ``"blob"``, ``"text"``, ``"time"``)."""
        return {}

    def type_name(self, type_: TypeEngine[Any]) -> str:
        """``type_`` as this database writes it (``INTEGER``, ``VARBINARY(max)``)."""
        return str(type_.compile(dialect=self.offline_dialect(self.name)))

    def quote(self, identifier: str) -> str:
        """``identifier`` quoted as SQLAlchemy's dialect quotes it, always."""
        return str(self._preparer.quote_identifier(identifier))

    def quote_table(self, schema: str | None, table: str) -> str:
        """``schema.table`` (or ``table``), each part quoted."""
        return f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)

    @cached_property
    def _preparer(self) -> Any:
        return self.offline_dialect(self.name).identifier_preparer


class Part:
    """A part of a :class:`Vendor`, which it can ask for the database's facts."""

    def __init__(self, vendor: Vendor) -> None:
        self.vendor = vendor


class DDLRules(Part):
    """The upgrade planner's rules: what holds less than Celery writes, and the statements
    that change a live table."""

    rewrite_note: ClassVar[str] = ""
    """What a table rewrite (widening a type) blocks while it runs (marked, untranslated)."""
    script_advice: ClassVar[str] = ""
    """How to run an upgrade script here (marked, untranslated)."""
    batch_separator: ClassVar[str] = ""
    """The line a script puts after each batch (SQL Server's ``GO``); "": none."""

    def too_narrow(self, live: ColumnState, column: Column[Any]) -> Message | None:
        """Why a column as it is holds less than Celery writes (None when it does not)."""
        found = self.vendor.type_name(live.type)
        # By name: a type read from the database, or one a Celery model declares for it.
        if column.name == "id" and not found.startswith("BIGINT"):
            return Message(
                # Translators: type is a database type such as INTEGER; limit a number.
                gettext_noop("column id is %(type)s: ids stop at %(limit)s; widen it to BIGINT"),
                # Without MySQL's display width.
                {"type": found.split("(")[0], "limit": INT_LIMIT},
            )
        return None

    def less_precise(self, live: ColumnState, column: Column[Any]) -> Message | None:
        """Why a column as it is keeps less precision than celery_sa's (None when it does
        not): changed only when the table is rewritten for another reason."""
        return None

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

    def widen_sequence_statements(
        self, sequence: SequenceSchema, table: Table, next_value: int | None
    ) -> list[ExecutableDDLElement]:
        """The statements that make an INTEGER sequence of ``table``'s ids BIGINT, handing
        out ``next_value`` next (where it is known)."""
        raise NotImplementedError(f"{self.vendor.name} has no INTEGER sequences to widen")

    def run_ddl(self, connection: Connection, statement: ExecutableDDLElement) -> None:
        """Run one planned statement on ``connection`` (in autocommit)."""
        connection.execute(statement)


class Introspection(Part):
    """Reading what a live database has, beyond SQLAlchemy's reflection."""

    def estimate_rows(self, execute: Execute, schema: str | None, table: str) -> int | None:
        """The table statistics' row count (no scan), or None where there are none."""
        return None

    def invalid_indexes(self, connection: Connection, table: Table) -> set[str]:
        """The names of ``table``'s indexes that exist but the database does not use."""
        return set()

    def next_sequence_value(self, connection: Connection, sequence: SequenceSchema) -> int | None:
        """What the sequence hands out next, where that can be read without using it."""
        return None

    def sequence_is_bigint(self, connection: Connection, sequence: SequenceSchema) -> bool:
        """Whether the live sequence counts in BIGINT."""
        return True

    def qualified(self, connection: Connection, name: str, schema: str | None) -> str:
        """``schema.name`` quoted by the connection's dialect."""
        preparer = connection.dialect.identifier_preparer
        quoted = preparer.quote(name)
        return f"{preparer.quote_schema(schema)}.{quoted}" if schema else quoted


class Writes(Part):
    """The result backend's statements: one row stored in one statement."""

    on_conflict_insert: Callable[[Table], Any]
    """An ``INSERT`` that takes ``ON CONFLICT`` (PostgreSQL's and SQLite's): the upserts
    below are built on it; databases without one override them instead."""

    def upsert(self, table: Table, values: Row, key: str, keep: Keep = None) -> Executable:
        """One statement that inserts ``values``, or, where a row with the same unique
        ``key`` exists, sets it to them, unless ``keep`` is true of that row. Ids still come
        from the table's sequence where it has one."""
        statement = self.on_conflict_insert(table).values(values)
        update = {name: statement.excluded[name] for name in values if name != key}
        where = None if keep is None else ~keep
        return statement.on_conflict_do_update(index_elements=[key], set_=update, where=where)  # type: ignore[no-any-return]

    def insert_missing(self, table: Table, values: Row) -> Executable:
        """One statement that inserts ``values`` unless their primary key exists."""
        return self.on_conflict_insert(table).values(values).on_conflict_do_nothing()  # type: ignore[no-any-return]
