"""The Django database alias that reads the tables Celery writes.

The user sets ``CELERY_RESULT_BACKEND`` once. When an alias in ``DATABASES`` already points
at that database it is used as it is; otherwise celery_sa registers one
(``CELERY_SA_DATABASE_ALIAS``, default ``"celery_sa"``) built from the URL.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from sqlalchemy.engine import URL

from celery_sa.conf import app_settings
from celery_sa.db.url import (
    database_identity,
    django_database_settings,
    parse_result_backend,
)
from celery_sa.errors import AliasTaken
from celery_sa.errors import translated as _


@dataclass(frozen=True)
class ResultDatabase:
    """Where Celery's results live, seen from both sides."""

    alias: str
    """The Django database alias the result models read through."""
    url: URL
    """The SQLAlchemy URL Celery's backend connects to (``CELERY_RESULT_BACKEND`` less ``db+``)."""
    config: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """The ``DATABASES`` entry celery_sa registered for ``alias``; ``None`` when ``alias``
    is one the user defined."""
    identity: tuple[str, ...] = field(default=(), compare=False, repr=False)
    """What identifies the database (see ``database_identity``), before any test renaming."""


_lock = threading.Lock()
_resolved: dict[str, ResultDatabase] = {}
# Alias -> identity of the database celery_sa registered it for.
_registered: dict[str, tuple[str, ...]] = {}


def result_database() -> ResultDatabase:
    """Resolve (once per backend URL) the alias that reads the result database.

    Raises :class:`~celery_sa.errors.BackendURLError` when ``CELERY_RESULT_BACKEND``
    cannot be used; the system checks report the same error with a hint.
    """
    backend = app_settings.result_backend or ""
    with _lock:
        database = _resolved.get(backend)
        if database is None:
            database = _resolved[backend] = _resolve(backend)
        if database.config is not None and connections.settings.get(database.alias) is not (
            database.config
        ):
            # Another backend URL (override_settings) borrowed the alias meanwhile. The
            # entry is put back as it is, test database name included.
            install_alias(database.alias, database.config, database.identity)
        return database


def result_alias() -> str:
    """The alias of :func:`result_database`."""
    return result_database().alias


def reset() -> None:
    """Forget resolved aliases, e.g. after ``DATABASES`` changed."""
    with _lock:
        _resolved.clear()


def _resolve(backend: str) -> ResultDatabase:
    url = parse_result_backend(backend)
    config = django_database_settings(url)
    identity = database_identity(config)
    own_alias = app_settings.database_alias
    for alias, current in connections.settings.items():
        # Under a test runner, current["NAME"] already is the test database's name, so the
        # alias celery_sa registered is recognised by what it was registered for.
        if database_identity(current) == identity or (
            alias == own_alias and _registered.get(alias) == identity
        ):
            registered = current if alias in _registered else None
            return ResultDatabase(alias=alias, url=url, config=registered, identity=identity)
    alias = own_alias
    if alias in connections.settings and alias not in _registered:
        raise AliasTaken(
            _(
                "CELERY_SA_DATABASE_ALIAS %(alias)r already names another database in "
                "DATABASES; choose a free alias for the result database."
            )
            % {"alias": alias}
        )
    configured = connections.configure_settings({DEFAULT_DB_ALIAS: {}, alias: config})[alias]
    install_alias(alias, configured, identity)
    return ResultDatabase(alias=alias, url=url, config=configured, identity=identity)


def install_alias(alias: str, configured: dict[str, Any], identity: tuple[str, ...]) -> None:
    """Point ``alias`` at the database ``configured`` (a ``DATABASES`` entry), closing this
    thread's connection to what it pointed at before."""
    # Drop this thread's connection to what the alias pointed at before, if it has one
    # (creating one just to close it would import a driver that may not be installed).
    for connection in connections.all(initialized_only=True):
        if connection.alias == alias:
            connection.close()
            del connections[alias]
    # Django's test runner writes the test database name into settings.DATABASES too.
    app_settings.databases[alias] = configured
    connections.settings[alias] = configured
    _registered[alias] = identity
