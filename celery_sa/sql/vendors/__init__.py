"""Everything that differs by database, one module per database, found here by name.

=================  ===============================  ==========================
module             SQLAlchemy backend names         Django ENGINE
=================  ===============================  ==========================
``mysql``          ``mysql``, ``mariadb``           ``django.db.backends.mysql``
``postgresql``     ``postgresql``                   ``django.db.backends.postgresql``
``sqlite``         ``sqlite``                       ``django.db.backends.sqlite3``
``mssql``          ``mssql``                        ``mssql`` (mssql-django)
=================  ===============================  ==========================
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from celery_sa.dialects.base import Database, Driver
from celery_sa.dialects.mssql import SQLServer
from celery_sa.dialects.mysql import MySQL
from celery_sa.dialects.postgresql import PostgreSQL
from celery_sa.dialects.sqlite import SQLite

__all__ = ["DATABASES", "Database", "Driver", "by_engine", "by_name", "of_connection"]

DATABASES: tuple[Database, ...] = (MySQL(), PostgreSQL(), SQLite(), SQLServer())
"""The supported databases."""

BACKEND_NAMES: tuple[str, ...] = tuple(name for db in DATABASES for name in db.names)
"""Every SQLAlchemy backend name celery_sa supports (``mysql``, ``mariadb``, …)."""

_by_name = {name: db for db in DATABASES for name in db.names}
_by_engine = {db.django_engine: db for db in DATABASES}


def by_name(name: str) -> Database | None:
    """The database of a SQLAlchemy backend (or dialect) name, e.g. ``"mariadb"``."""
    return _by_name.get(name)


def by_engine(engine: str) -> Database | None:
    """The database of a Django ``ENGINE``, e.g. ``"django.db.backends.mysql"``."""
    return _by_engine.get(engine)


def of_connection(connection: BaseDatabaseWrapper) -> Database:
    """The database behind a Django connection (of a supported ENGINE)."""
    database = by_engine(connection.settings_dict["ENGINE"])
    if database is None:
        raise LookupError(f"celery_sa does not support {connection.settings_dict['ENGINE']!r}")
    return database
