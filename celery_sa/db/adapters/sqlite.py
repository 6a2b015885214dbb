"""SQLite on the Django side: the embedded default, a file shared by the workers and Django."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from celery_sa.db.adapters.base import Driver, Operations, UrlMapping
from celery_sa.errors import UnsupportedDatabase
from celery_sa.errors import translated as _

SQLITE3 = Driver("sqlite3", "Python's sqlite3 module")
# How SQLAlchemy's SQLite dialect stores a DateTime (Celery's date_done).
STORED_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


class SQLiteUrlMapping(UrlMapping):
    vendor_name = "sqlite"
    django_engine = "django.db.backends.sqlite3"
    django_drivers = (SQLITE3,)
    celery_drivers = {("sqlite", "pysqlite"): SQLITE3}

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
        return (self.vendor_name, os.path.realpath(name) if name else "")


class SQLiteOperations(Operations):
    single_writer = True

    def datetime_param(self, value: datetime, connection: BaseDatabaseWrapper) -> Any:
        # SQLite compares text: SQLAlchemy always writes the microseconds, Django drops them
        # when they are zero, and "...:26" sorts before "...:26.000000".
        return value.strftime(STORED_FORMAT)
