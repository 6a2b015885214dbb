"""SQL Server on the Django side: pyodbc for Celery, mssql-django for Django."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from celery_sa.db.adapters.base import PLAIN_DISTINCT, Driver, Operations, UrlMapping
from celery_sa.errors import UnsupportedDatabase
from celery_sa.errors import translated as _


class SQLServerUrlMapping(UrlMapping):
    vendor_name = "mssql"
    django_engine = "mssql"
    django_drivers = (Driver("mssql", "mssql-django"),)
    celery_drivers = {("mssql", "pyodbc"): Driver("pyodbc", "pyodbc")}
    default_port = "1433"

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


class SQLServerOperations(Operations):
    # T-SQL's recursive queries have no RECURSIVE keyword; DISTINCT reads the index.
    distinct_sql = PLAIN_DISTINCT
    byte_length_function = "DATALENGTH"  # LEN() leaves out trailing 0x20 bytes

    def datetime_param(self, value: datetime, connection: BaseDatabaseWrapper) -> Any:
        # pyodbc sends a datetime as DATETIME2, and SQL Server (2016 on) compares a DATETIME
        # column with it at DATETIME2's precision: a time stored as .003 is .0033333 there,
        # so a date_done read back never equals its own row. Whole milliseconds (all that a
        # DATETIME reads back as) go as ISO 8601 text, which SQL Server converts to the
        # column's own type under any DATEFORMAT; finer times (a bound from the clock) stay
        # datetimes.
        if value.microsecond % 1000:
            return value
        return value.isoformat(timespec="milliseconds")
