"""Everything that differs by database in celery_sa's SQL, one module per database, found
here by SQLAlchemy's backend name.

=================  ===============================
module             SQLAlchemy backend names
=================  ===============================
``mysql``          ``mysql``, ``mariadb``
``postgresql``     ``postgresql``
``sqlite``         ``sqlite``
``mssql``          ``mssql``
=================  ===============================

The Django side of each database (its ``DATABASES`` entry, ORM helpers) is in
:mod:`celery_sa.db.adapters`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import URL, Dialect

from celery_sa.sql.vendors.base import Vendor
from celery_sa.sql.vendors.mssql import SQLServer
from celery_sa.sql.vendors.mysql import MySQL
from celery_sa.sql.vendors.postgresql import PostgreSQL
from celery_sa.sql.vendors.sqlite import SQLite

__all__ = ["NAMES", "VENDORS", "Vendor", "engine_options", "get", "offline_dialect"]

VENDORS: tuple[Vendor, ...] = (MySQL(), PostgreSQL(), SQLite(), SQLServer())
"""The supported databases."""

NAMES: tuple[str, ...] = tuple(name for vendor in VENDORS for name in vendor.names)
"""Every SQLAlchemy backend name celery_sa supports (``mysql``, ``mariadb``, …)."""

_by_name = {name: vendor for vendor in VENDORS for name in vendor.names}


def get(name: str) -> Vendor:
    """The database of a SQLAlchemy backend (or dialect) name; :class:`LookupError` when
    celery_sa does not support it."""
    vendor = _by_name.get(name)
    if vendor is None:
        raise LookupError(f"celery_sa does not support the database {name!r}")
    return vendor


def engine_options(url: URL, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` for ``create_engine(url)``, with what celery_sa's engines need on its
    database (:meth:`Vendor.engine_options`; the options given win); as given for a
    database celery_sa does not know."""
    vendor = _by_name.get(url.get_backend_name())
    return dict(options) if vendor is None else vendor.engine_options(url, options)


def offline_dialect(name: str) -> Dialect:
    """SQLAlchemy's dialect ``name`` (``"mariadb"``) as celery_sa compiles its DDL without
    a server; :class:`LookupError` for a database celery_sa does not support."""
    return get(name).offline_dialect(name)
