"""Each database on the Django side, one module per database, found here by SQLAlchemy's
backend name, by Django's ``ENGINE`` or by a Django connection.

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

from celery_sa.db.vendors.base import Driver, Operations, Translation
from celery_sa.db.vendors.mssql import SQLServerOperations, SQLServerTranslation
from celery_sa.db.vendors.mysql import MySQLOperations, MySQLTranslation
from celery_sa.db.vendors.postgresql import PostgreSQLOperations, PostgreSQLTranslation
from celery_sa.db.vendors.sqlite import SQLiteOperations, SQLiteTranslation

__all__ = [
    "TRANSLATIONS",
    "Driver",
    "Operations",
    "Translation",
    "find_translation",
    "get_operations",
    "get_translation",
]

_SUPPORTED: tuple[tuple[Translation, Operations], ...] = (
    (MySQLTranslation(), MySQLOperations("mysql")),
    (PostgreSQLTranslation(), PostgreSQLOperations("postgresql")),
    (SQLiteTranslation(), SQLiteOperations("sqlite")),
    (SQLServerTranslation(), SQLServerOperations("mssql")),
)
TRANSLATIONS: tuple[Translation, ...] = tuple(t for t, _ in _SUPPORTED)
"""The supported databases' URL <-> ``DATABASES`` translations."""

_by_name = {name: t for t in TRANSLATIONS for name in t.vendor.names}
_by_engine = {t.django_engine: t for t in TRANSLATIONS}
_operations = {t.django_engine: operations for t, operations in _SUPPORTED}


def get_translation(name: str) -> Translation:
    """The translation of a SQLAlchemy backend name celery_sa supports (``"mariadb"``);
    :class:`LookupError` for any other."""
    found = _by_name.get(name)
    if found is None:
        raise LookupError(f"celery_sa does not support the database {name!r}")
    return found


def find_translation(engine: str) -> Translation | None:
    """The translation of a Django ``ENGINE`` (``"django.db.backends.mysql"``); None when
    celery_sa does not support it."""
    return _by_engine.get(engine)


def get_operations(connection: BaseDatabaseWrapper) -> Operations:
    """The ORM helpers for a Django connection; :class:`LookupError` for an unsupported
    ``ENGINE``."""
    engine = connection.settings_dict["ENGINE"]
    found = _operations.get(engine)
    if found is None:
        raise LookupError(f"celery_sa does not support {engine!r}")
    return found
