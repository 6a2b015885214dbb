"""SQLite: the embedded default, a file shared by the workers and Django."""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.translation import gettext_lazy
from sqlalchemy import Column, Integer, Table
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.types import TypeEngine

from celery_sa.dialects.base import (
    Database,
    Driver,
)
from celery_sa.errors import UnsupportedDatabase
from celery_sa.errors import translated as _
from celery_sa.tables.ddl import AlterTable

if TYPE_CHECKING:
    from celery_sa.tables.state import ColumnState

SQLITE3 = Driver("sqlite3", "Python's sqlite3 module")
# How SQLAlchemy's SQLite dialect stores a DateTime (Celery's date_done).
STORED_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


class SQLite(Database):
    names = ("sqlite",)
    django_engine = "django.db.backends.sqlite3"
    django_drivers = (SQLITE3,)
    celery_drivers = {("sqlite", "pysqlite"): SQLITE3}
    single_writer = True
    script_advice = gettext_lazy("Run it with sqlite3 -bail, which stops at the first error.")

    def default_drivername(self) -> str:
        return "sqlite"  # how SQLite URLs are written (pysqlite is the only driver)

    def to_django(self, config: dict[str, Any], query: dict[str, str]) -> None:
        name = config["NAME"]
        if not name or name == ":memory:" or query.get("mode") == "memory":
            raise UnsupportedDatabase(
                _(
                    "CELERY_RESULT_BACKEND is an in-memory SQLite database, which workers and "
                    "Django cannot share; give a file path "
                    "(db+sqlite:////absolute/path/results.sqlite3)."
                )
            )
        config["NAME"] = os.path.abspath(name)
        if "timeout" in query:
            config["OPTIONS"]["timeout"] = float(query["timeout"])
        head, tail = os.path.split(config["NAME"])
        # Django's default test database for SQLite is in memory, which a worker subprocess
        # cannot see; keep it a file beside the real one.
        config["TEST"] = {"NAME": os.path.join(head, f"test_{tail}")}

    def from_django(
        self, options: dict[str, Any], host: str | None
    ) -> tuple[dict[str, Any], str | None]:
        return {key: value for key, value in options.items() if key == "timeout"}, host

    def identity(self, config: dict[str, Any]) -> tuple[str, ...]:
        name = str(config.get("NAME") or "")
        return (self.name, os.path.realpath(name) if name else "")

    def datetime_param(self, value: datetime, connection: BaseDatabaseWrapper) -> Any:
        # SQLite compares text: SQLAlchemy always writes the microseconds, Django drops them
        # when they are zero, and "...:26" sorts before "...:26.000000".
        return value.strftime(STORED_FORMAT)

    def type_variants(self) -> dict[str, TypeEngine[Any]]:
        # Only a column declared exactly INTEGER PRIMARY KEY auto-increments (64-bit anyway).
        return {"id": Integer()}

    def too_narrow(self, live: ColumnState, column: Column[Any]) -> str:
        return ""  # INTEGER is 64-bit and TEXT/BLOB unbounded

    def alter_statements(self, change: AlterTable) -> list[ExecutableDDLElement]:
        # One column per ALTER TABLE; no type ever needs widening.
        alters: list[ExecutableDDLElement] = [
            AlterTable(change.table, add=[column]) for column in change.add
        ]
        return alters + super().alter_statements(AlterTable(change.table, indexes=change.indexes))

    def on_conflict_insert(self, table: Table) -> Any:
        return sqlite_insert(table)


@compiles(AlterTable, "sqlite")
def _alter_table(element: AlterTable, compiler: Any, **kw: Any) -> str:
    (column,) = element.add
    table = compiler.preparer.format_table(element.table)
    return f"ALTER TABLE {table} ADD COLUMN {compiler.get_column_specification(column)}"
