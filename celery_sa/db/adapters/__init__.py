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

from celery_sa.db.adapters.base import Driver, Operations, UrlMapping
from celery_sa.db.adapters.mssql import SQLServerOperations, SQLServerUrlMapping
from celery_sa.db.adapters.mysql import MySQLOperations, MySQLUrlMapping
from celery_sa.db.adapters.postgresql import PostgreSQLOperations, PostgreSQLUrlMapping
from celery_sa.db.adapters.sqlite import SQLiteOperations, SQLiteUrlMapping

__all__ = [
    "MAPPINGS",
    "Driver",
    "Operations",
    "UrlMapping",
    "find_mapping_for_engine",
    "get_mapping",
    "get_operations",
]

_SUPPORTED: tuple[tuple[UrlMapping, type[Operations]], ...] = (
    (MySQLUrlMapping(), MySQLOperations),
    (PostgreSQLUrlMapping(), PostgreSQLOperations),
    (SQLiteUrlMapping(), SQLiteOperations),
    (SQLServerUrlMapping(), SQLServerOperations),
)
MAPPINGS: tuple[UrlMapping, ...] = tuple(mapping for mapping, _ in _SUPPORTED)
"""The supported databases' URL <-> ``DATABASES`` mappings."""

_by_name = {name: mapping for mapping in MAPPINGS for name in mapping.vendor.names}
_by_engine = {mapping.django_engine: mapping for mapping in MAPPINGS}
_operations = {mapping.django_engine: kind(mapping.vendor) for mapping, kind in _SUPPORTED}


def get_mapping(name: str) -> UrlMapping:
    """The mapping of a SQLAlchemy backend name celery_sa supports (``"mariadb"``);
    :class:`LookupError` for any other."""
    found = _by_name.get(name)
    if found is None:
        raise LookupError(f"celery_sa does not support the database {name!r}")
    return found


def find_mapping_for_engine(engine: str) -> UrlMapping | None:
    """The mapping of a Django ``ENGINE`` (``"django.db.backends.mysql"``); None when
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
