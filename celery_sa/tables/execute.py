"""Running the tables' DDL on the result database: one autocommit connection, every
failure a :class:`TableError` that names the statement."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

from django.utils.translation import gettext as _
from sqlalchemy import Connection, Table, create_engine, inspect
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.ddl import ExecutableDDLElement

from celery_sa.errors import cannot_connect, one_line
from celery_sa.sql import vendors
from celery_sa.sql.live import read_state
from celery_sa.sql.schema import ResultTables, create_statements
from celery_sa.tables.upgrade import TablePlan, plan_upgrade

T = TypeVar("T")


class TableError(Exception):
    """The result database refused or failed a step; the message is one line."""


@contextmanager
def connect(url: URL) -> Iterator[Connection]:
    """A connection in autocommit: every statement stands alone, so a failed or
    interrupted upgrade keeps what was done and the next run resumes from there."""
    try:
        engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        connection = engine.connect()
    except (SQLAlchemyError, ImportError) as exc:
        raise TableError(cannot_connect(url, exc)) from exc
    try:
        yield connection
    finally:
        connection.close()
        engine.dispose()


def run_step(step: Callable[[], T], sql: str) -> T:
    """``step()``; a database error becomes a :class:`TableError` naming ``sql``."""
    try:
        return step()
    except SQLAlchemyError as exc:
        statement = " ".join(sql.split())
        raise TableError(
            # Translators: error is the database's message; statement the SQL (or a step such
            # as "inspecting the tables") that failed.
            _("%(error)s (while running: %(statement)s)")
            % {"error": one_line(exc), "statement": statement}
        ) from exc


def plan(connection: Connection, tables: ResultTables) -> list[TablePlan]:
    """The upgrade plan of both tables; a table that is not Celery's is an error."""
    state = run_step(lambda: read_state(connection, tables), _("inspecting the tables"))
    plans = plan_upgrade(state, tables)
    errors = [plan.error for plan in plans if plan.error]
    if errors:
        raise TableError(" ".join(errors))
    return plans


def missing_tables(connection: Connection, tables: ResultTables) -> list[Table]:
    """The configured tables that do not exist."""
    inspector = run_step(lambda: inspect(connection), _("inspecting the tables"))
    return [
        table for table in tables.all() if not inspector.has_table(table.name, schema=table.schema)
    ]


def create_tables(connection: Connection, tables: ResultTables, missing: list[Table]) -> None:
    """Create ``missing`` (and their sequences and indexes)."""
    statements = create_statements(connection.dialect, tables, missing)
    run_step(
        lambda: tables.metadata.create_all(connection, tables=missing, checkfirst=True),
        "\n".join(statements),
    )


def apply(connection: Connection, plan: TablePlan) -> None:
    """Run ``plan``'s statements one by one, each committed on its own."""
    rules = vendors.get(connection.dialect.name).ddl
    for statement in plan.statements:
        run_step(
            partial(rules.run_ddl, connection, statement),
            compiled(statement, connection.dialect),
        )


def compiled(statement: ExecutableDDLElement, dialect: Dialect) -> str:
    """``statement`` as ``dialect`` writes it."""
    return str(statement.compile(dialect=dialect)).strip()
