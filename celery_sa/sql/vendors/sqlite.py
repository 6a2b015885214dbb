"""SQLite: the SQL celery_sa runs there (the embedded default)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Integer
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.types import TypeEngine

from celery_sa.sql.ddl import AlterTable
from celery_sa.sql.text import Message, gettext_noop
from celery_sa.sql.vendors.base import DDLRules, Introspection, Vendor, Writes

if TYPE_CHECKING:
    from celery_sa.sql.state import ColumnState


class SQLiteWrites(Writes):
    on_conflict_insert = staticmethod(sqlite_insert)


class SQLiteDDL(DDLRules):
    script_advice = gettext_noop("Run it with sqlite3 -bail, which stops at the first error.")

    def too_narrow(self, live: ColumnState, column: Column[Any]) -> Message | None:
        return None  # INTEGER is 64-bit and TEXT/BLOB unbounded

    def alter_statements(self, change: AlterTable) -> list[ExecutableDDLElement]:
        # One column per ALTER TABLE; no type ever needs widening.
        alters: list[ExecutableDDLElement] = [
            AlterTable(change.table, add=[column]) for column in change.add
        ]
        return alters + super().alter_statements(AlterTable(change.table, indexes=change.indexes))


class SQLite(Vendor):
    names = ("sqlite",)
    ddl_class = SQLiteDDL
    introspection_class = Introspection
    writes_class = SQLiteWrites

    def type_variants(self) -> dict[str, TypeEngine[Any]]:
        # Only a column declared exactly INTEGER PRIMARY KEY auto-increments (64-bit anyway).
        return {"id": Integer()}


@compiles(AlterTable, "sqlite")
def _alter_table(element: AlterTable, compiler: Any, **kw: Any) -> str:
    (column,) = element.add
    table = compiler.preparer.format_table(element.table)
    return f"ALTER TABLE {table} ADD COLUMN {compiler.get_column_specification(column)}"
