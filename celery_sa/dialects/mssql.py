"""SQL Server: pyodbc for Celery, mssql-django for Django. No server runs in the tests:
what is written here is checked as compiled SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import mssql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import TypeEngine

from celery_sa.dialects.base import Database, Driver
from celery_sa.errors import UnsupportedDatabase
from celery_sa.tables.ddl import AlterTable


class SQLServer(Database):
    names = ("mssql",)
    django_engine = "mssql"
    django_drivers = (Driver("mssql", "mssql-django"),)
    celery_drivers = {("mssql", "pyodbc"): Driver("pyodbc", "pyodbc")}
    default_port = "1433"

    def to_django(self, config: dict[str, Any], query: dict[str, str]) -> None:
        if "odbc_connect" in query:
            raise UnsupportedDatabase(
                "CELERY_RESULT_BACKEND uses odbc_connect, which celery_sa cannot translate for "
                "Django; give host, port and database in the URL and ?driver=… instead."
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


@compiles(AlterTable, "mssql")
def _alter_table(element: AlterTable, compiler: Any, **kw: Any) -> str:
    specs = ", ".join(compiler.get_column_specification(c) for c in element.add)
    return f"ALTER TABLE {compiler.preparer.format_table(element.table)} ADD {specs}"
