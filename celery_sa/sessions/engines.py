"""SQLAlchemy engines for non-ORM data: one per database per process, made when first used.

Databases are named. ``CELERY_SA_DATABASE_URL`` is the one called ``"default"``;
``CELERY_SA_DATABASES`` adds others (or replaces it)::

    CELERY_SA_DATABASES = {
        "default": "postgresql+psycopg://app@db/books",      # a SQLAlchemy URL
        "app": {"ALIAS": "default"},                          # Django's DATABASES["default"]
        "warehouse": {"URL": "mysql://…", "ENGINE_OPTIONS": {"pool_size": 10}},
    }

Every engine gets ``CELERY_SA_ENGINE_OPTIONS`` over the defaults below, then the
database's own ``ENGINE_OPTIONS``. Engines survive ``fork()``: each child disposes of the
pool it inherited without closing the parent's connections (SQLAlchemy's documented recipe),
so a connection opened before the fork never crosses into a child.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from celery_sa.conf import app_settings
from celery_sa.db.url import sqlalchemy_url
from celery_sa.errors import BackendURLError
from celery_sa.sql import vendors
from celery_sa.sql.process_engines import ProcessEngines

DEFAULT_DATABASE = "default"
DEFAULT_ENGINE_OPTIONS: dict[str, Any] = {
    # A connection the server dropped (restart, failover) is noticed before it is used.
    "pool_pre_ping": True,
    # Below MySQL's default wait_timeout (8 hours), so the server never closes an idle
    # pooled connection under us.
    "pool_recycle": 3600,
}

_engines = ProcessEngines()


def get_engine(name: str = DEFAULT_DATABASE) -> Engine:
    """The engine of database ``name`` in this process, created on first use."""

    def make() -> Engine:
        url, options = _engine_arguments(name)
        return create_engine(url, **vendors.engine_options(url, options))

    return _engines.get(name, make)


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (settings changed, tests)."""
    _engines.dispose()


def _engine_arguments(name: str) -> tuple[URL, dict[str, Any]]:
    databases = _databases()
    if name not in databases:
        known = ", ".join(sorted(databases)) or "none"
        raise ImproperlyConfigured(
            f"No database {name!r} for SessionTask: set CELERY_SA_DATABASE_URL (the "
            f"'default' one) or add it to CELERY_SA_DATABASES (configured: {known})."
        )
    entry = databases[name]
    if isinstance(entry, str):
        entry = {"URL": entry}
    options = {
        **DEFAULT_ENGINE_OPTIONS,
        **app_settings.session_engine_options,
        **entry.get("ENGINE_OPTIONS", {}),
    }
    if "ALIAS" in entry:
        return _alias_url(name, entry["ALIAS"]), options
    try:
        return make_url(entry["URL"]), options
    except (KeyError, ArgumentError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"CELERY_SA_DATABASES[{name!r}] needs a SQLAlchemy URL or an ALIAS ({exc})."
        ) from exc


def _alias_url(name: str, alias: str) -> URL:
    if alias not in connections.settings:
        raise ImproperlyConfigured(
            f"CELERY_SA_DATABASES[{name!r}] names Django database {alias!r}, "
            "which DATABASES does not define."
        )
    try:
        # The connection's settings carry the test database's name under a test runner.
        return sqlalchemy_url(connections[alias].settings_dict)
    except BackendURLError as exc:
        raise ImproperlyConfigured(f"CELERY_SA_DATABASES[{name!r}]: {exc}") from exc


def _databases() -> dict[str, Any]:
    databases: dict[str, Any] = {}
    url = app_settings.session_database_url
    if url:
        databases[DEFAULT_DATABASE] = url
    databases.update(app_settings.session_databases)
    return databases
