"""SQL Server: pyodbc for Celery, mssql-django for Django. No server runs in the tests:
what is written here is checked as compiled SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Sequence as SequenceSchema
from sqlalchemy import Table, literal, select
from sqlalchemy.dialects import mssql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement, ColumnElement, Executable
from sqlalchemy.types import TypeEngine

from celery_sa.dialects.base import PLAIN_DISTINCT, Database, Driver
from celery_sa.errors import UnsupportedDatabase
from celery_sa.errors import translated as _
from celery_sa.tables.ddl import AlterTable


class SQLServer(Database):
    names = ("mssql",)
    django_engine = "mssql"
    django_drivers = (Driver("mssql", "mssql-django"),)
    celery_drivers = {("mssql", "pyodbc"): Driver("pyodbc", "pyodbc")}
    default_port = "1433"
    # T-SQL's recursive queries have no RECURSIVE keyword; DISTINCT reads the index.
    distinct_sql = PLAIN_DISTINCT

    def to_django(self, config: dict[str, Any], query: dict[str, str]) -> None:
        if "odbc_connect" in query:
            raise UnsupportedDatabase(
                _(
                    "CELERY_RESULT_BACKEND uses odbc_connect, which celery_sa cannot translate "
                    "for Django; give host, port and database in the URL and ?driver=… instead."
                )
            )
        if "driver" in query:
            config["OPTIONS"]["driver"] = query.pop("driver")
        if query:
            config["OPTIONS"]["extra_params"] = ";".join(f"{k}={v}" for k, v in query.items())

    def from_django(
        self, options: dict[str, Any], host: str | None
    ) -> tuple[dict[str, Any], str | None]:
        query: dict[str, Any] = {}
        for pair in str(options.pop("extra_params", "") or "").split(";"):
            key, sep, value = pair.partition("=")
            if sep:
                query[key.strip()] = value.strip()
        return {**query, **options}, host

    def type_variants(self) -> dict[str, TypeEngine[Any]]:
        # VARBINARY(max) and NVARCHAR(max): SQLAlchemy's LargeBinary/Text are the
        # deprecated IMAGE/NTEXT here.
        return {"blob": mssql.VARBINARY(), "text": mssql.NVARCHAR()}  # type: ignore[no-untyped-call]

    def upsert(
        self,
        table: Table,
        values: dict[str, Any],
        key: str,
        keep: ColumnElement[bool] | None = None,
    ) -> Executable:
        return Merge(table, values, (key,), update=True, keep=keep)

    def insert_missing(self, table: Table, values: dict[str, Any]) -> Executable:
        keys = tuple(column.name for column in table.primary_key.columns)
        return Merge(table, values, keys, update=False)


@compiles(AlterTable, "mssql")
def _alter_table(element: AlterTable, compiler: Any, **kw: Any) -> str:
    specs = ", ".join(compiler.get_column_specification(c) for c in element.add)
    return f"ALTER TABLE {compiler.preparer.format_table(element.table)} ADD {specs}"


class Merge(Executable, ClauseElement):
    """``MERGE`` of one row into ``table`` by its ``keys`` columns (SQLAlchemy has no MERGE
    construct; this one is compiled from SQLAlchemy's own pieces)."""

    inherit_cache = False

    def __init__(
        self,
        table: Table,
        values: dict[str, Any],
        keys: tuple[str, ...],
        update: bool,
        keep: ColumnElement[bool] | None = None,
    ) -> None:
        self.table = table
        self.values = values
        self.keys = keys
        self.update = update
        self.keep = keep


@compiles(Merge, "mssql")
def _merge(element: Merge, compiler: Any, **kw: Any) -> str:
    preparer = compiler.preparer
    table = element.table
    target = preparer.format_table(table)
    source = select(
        *(
            # A bound parameter as it is; a plain value bound with the column's type.
            (
                value if isinstance(value, ColumnElement) else literal(value, table.c[name].type)
            ).label(name)
            for name, value in element.values.items()
        )
    )
    names = list(element.values)
    match = " AND ".join(
        f"{target}.{preparer.quote(k)} = source.{preparer.quote(k)}" for k in element.keys
    )
    sql = (
        f"MERGE INTO {target} WITH (HOLDLOCK) USING ({compiler.process(source, **kw)}) AS source "
        f"ON {match}"
    )
    if element.update:
        condition = (
            "" if element.keep is None else f" AND NOT ({compiler.process(element.keep, **kw)})"
        )
        assignments = ", ".join(
            f"{preparer.quote(n)} = source.{preparer.quote(n)}"
            for n in names
            if n not in element.keys
        )
        sql += f" WHEN MATCHED{condition} THEN UPDATE SET {assignments}"
    columns = [preparer.quote(n) for n in names]
    inserted = [f"source.{preparer.quote(n)}" for n in names]
    sequence = table.c.id.default if "id" in table.c and "id" not in element.values else None
    if isinstance(sequence, SequenceSchema):
        columns.insert(0, preparer.quote("id"))
        inserted.insert(0, compiler.process(sequence.next_value(), **kw))
    return (
        f"{sql} WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({', '.join(inserted)});"
    )
