"""The result databases under test (the embedded SQLite, MariaDB through both drivers,
PostgreSQL), each with fresh result tables, and names kept apart per tagged run."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import override_settings
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from celery_sa.conf import configured_tables
from celery_sa.db import result_alias, result_database
from celery_sa.db.url import sqlalchemy_url
from celery_sa.models import forget_live_columns
from tests.settings import TEST_TAG
from tests.support.services import require_service

if TYPE_CHECKING:
    from _pytest.mark import ParameterSet


def tagged(name: str) -> str:
    """``name`` of a server-wide object (a user, a MariaDB schema), kept apart per run."""
    return f"{name}_{TEST_TAG}" if TEST_TAG else name


@dataclass(frozen=True)
class ResultDB:
    """A result database under test: the Django alias and the URL a worker writes to."""

    name: str
    alias: str
    url: str


RESULT_DBS = {
    # name: (service, Django alias or None for the derived SQLite alias, SQLAlchemy driver)
    "sqlite": (None, None, "sqlite"),
    "mysqlclient": ("mysql", "mysql", "mysql+mysqldb"),
    "pymysql": ("mysql", "mysql", "mysql+pymysql"),
    "postgresql": ("postgresql", "postgresql", "postgresql+psycopg"),
}


def result_db_param(name: str, *values: object) -> ParameterSet:
    """The result database ``name`` (and any further ``values``) as a test parameter,
    marked with the service the database needs."""
    service = RESULT_DBS[name][0]
    return pytest.param(name, *values, marks=pytest.mark.services(service) if service else ())


SCHEMA_DATABASES = [result_db_param("postgresql"), result_db_param("mysqlclient")]
"""The result databases that have schemas (MariaDB calls them databases)."""


@contextmanager
def fresh_result_db(name: str) -> Iterator[ResultDB]:
    service, alias, driver = RESULT_DBS[name]
    if service:
        require_service(service)
    alias = alias or result_alias()
    url = "db+" + sqlalchemy_url(connections[alias].settings_dict, driver).render_as_string(
        hide_password=False
    )
    with override_settings(CELERY_RESULT_BACKEND=url):
        assert result_alias() == alias, "the result URL did not resolve to the alias it came from"
        drop_result_tables()
        call_command("celery_sa_tables", "create", stdout=io.StringIO())
        yield ResultDB(name=name, alias=alias, url=url)
        drop_result_tables()


def drop_result_tables() -> None:
    """Drop the configured result tables (and their sequences) on the result database."""
    forget_live_columns()
    engine = create_engine(result_database().url, poolclass=NullPool)
    try:
        configured_tables().metadata.drop_all(engine, checkfirst=True)
    finally:
        engine.dispose()
