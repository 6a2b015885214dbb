"""What the Django side needs to know about a kind of database, with the answers most share.

Two parts, each for one reader, as Django splits a database backend: :class:`UrlMapping`
turns Celery's SQLAlchemy URL into a ``DATABASES`` entry and back (:mod:`celery_sa.db.url`),
:class:`Operations` helps the ORM's queries over Celery's tables (the admin, the reports,
the purge). The SQL both sides run is :mod:`celery_sa.sql.vendors`'.

A new database is a module here with its subclasses, listed in ``__init__``.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from django.db.backends.base.base import BaseDatabaseWrapper

from celery_sa.sql import vendors
from celery_sa.sql.vendors import Vendor


@dataclass(frozen=True)
class Driver:
    """A Python module that must be importable, and the pip package that provides it."""

    module: str
    package: str


class UrlMapping:
    """One database's SQLAlchemy URLs and Django ``DATABASES`` entries, to and fro."""

    vendor_name: ClassVar[str]
    """The main SQLAlchemy backend name of the database (:mod:`celery_sa.sql.vendors`)."""
    django_engine: ClassVar[str]
    """The ``ENGINE`` of Django's backend for it."""
    django_drivers: ClassVar[tuple[Driver, ...]]
    """What Django's backend imports (any one of them will do)."""
    celery_drivers: ClassVar[dict[tuple[str, str], Driver]]
    """What Celery's engine imports, by (backend name, SQLAlchemy driver name)."""
    default_port: ClassVar[str] = ""

    @property
    def vendor(self) -> Vendor:
        return vendors.get(self.vendor_name)

    def default_drivername(self) -> str:
        """The SQLAlchemy driver for a URL made from a Django entry: the one Django uses,
        which is SQLAlchemy's default for the database."""
        name = self.vendor_name
        return f"{name}+{self.vendor.offline_dialect(name).driver}"

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
        return (self.vendor_name, host, port, str(config.get("NAME") or ""))


PLAIN_DISTINCT = "SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL"
"""For optimizers that skip along an index by themselves (MySQL's "index for group-by")."""


@dataclass(frozen=True)
class Replication:
    """How a read replica stands: whether it replays the primary's changes, and how far
    behind it is (``None``: not known, e.g. stopped)."""

    running: bool
    lag_seconds: float | None


class Operations:
    """Helpers for the ORM's queries over Celery's tables on one database."""

    single_writer: ClassVar[bool] = False
    """Only one transaction may write at a time, so parallel deletes would only wait."""
    byte_length_function: ClassVar[str] = "LENGTH"
    """The SQL function that gives a binary value's size in bytes."""
    distinct_sql: ClassVar[str] = (
        "WITH RECURSIVE found (value) AS ("
        "SELECT MIN({column}) FROM {table} "
        "UNION ALL SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > found.value) "
        "FROM found WHERE found.value IS NOT NULL"
        ") SELECT value FROM found WHERE value IS NOT NULL"
    )
    """The distinct non-NULL values of an indexed column, one index seek each (a loose index
    scan, as PostgreSQL's wiki writes it): a plain DISTINCT reads the whole index there."""

    def __init__(self, vendor: Vendor) -> None:
        self.vendor = vendor

    def distinct_values(
        self, connection: BaseDatabaseWrapper, table: str, column: str
    ) -> list[Any]:
        """The distinct non-NULL values of ``table``'s indexed ``column``, cheaply."""
        quote = connection.ops.quote_name
        sql = self.distinct_sql.format(table=quote(table), column=quote(column))
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return [value for (value,) in cursor.fetchall()]

    def stored_zone(self, connection: BaseDatabaseWrapper, zone: str) -> zoneinfo.ZoneInfo:
        """The zone of the naive times a Celery worker wrote in ``zone``."""
        return zoneinfo.ZoneInfo(zone)

    def datetime_param(self, value: datetime, connection: BaseDatabaseWrapper) -> Any:
        """A naive datetime as a query parameter compared with Celery's stored values."""
        return connection.ops.adapt_datetimefield_value(value)

    def replication(self, connection: BaseDatabaseWrapper) -> Replication | None:
        """How the database behind ``connection`` replicates from its primary; None when
        it is not a replica (or the database cannot tell)."""
        return None

    def estimate_rows(
        self, connection: BaseDatabaseWrapper, schema: str | None, table: str
    ) -> int | None:
        """The table statistics' row count (no scan), or None where there are none."""

        def execute(sql: str, params: Any) -> Any:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                row = cursor.fetchone()
            return None if row is None else row[0]

        return self.vendor.introspection.estimate_rows(execute, schema, table)
