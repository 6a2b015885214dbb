"""Translated URLs connect to real servers: odd passwords, unix sockets, both sides."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connections
from django.db.utils import load_backend
from django.test import override_settings

from celery_sa.checks import probe
from celery_sa.db import result_database
from celery_sa.db.url import django_database_settings, parse_result_backend
from celery_sa.errors import BackendURLError
from tests.settings import TEST_DATABASE
from tests.support.databases import tagged

ODD_USER = tagged("celery_sa_odd")

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
ODD_PASSWORD = "p@ss:w/rd#%?&= +;"


def django_query(backend: str, sql: str) -> Any:
    """Run ``sql`` through Django's own backend, configured from the result backend URL."""
    config = django_database_settings(parse_result_backend(backend))
    config = connections.configure_settings({"default": {}, "probe": config})["probe"]
    wrapper = load_backend(config["ENGINE"]).DatabaseWrapper(config, "probe")
    try:
        with wrapper.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]
    finally:
        wrapper.close()


def celery_side_errors(backend: str) -> list[str]:
    with override_settings(CELERY_RESULT_BACKEND=backend):
        return [m.msg for m in probe(result_database()) if m.id == "celery_sa.E009"]


@pytest.fixture
def odd_user() -> Iterator[str]:
    """A MariaDB user whose password needs percent-encoding in a URL."""
    with connections["mysql"].cursor() as cursor:
        cursor.execute(f"DROP USER IF EXISTS '{ODD_USER}'@'%'")
        cursor.execute(f"CREATE USER '{ODD_USER}'@'%%' IDENTIFIED BY %s", [ODD_PASSWORD])
        cursor.execute(f"GRANT ALL ON {TEST_DATABASE}.* TO '{ODD_USER}'@'%'")
    yield ODD_USER
    with connections["mysql"].cursor() as cursor:
        cursor.execute(f"DROP USER IF EXISTS '{ODD_USER}'@'%'")


@pytest.mark.parametrize("driver", ["mysql", "mysql+pymysql"])
@pytest.mark.services("mysql")
def test_a_password_that_needs_encoding_logs_in_on_both_sides(odd_user: str, driver: str) -> None:
    backend = (
        f"db+{driver}://{odd_user}:{quote(ODD_PASSWORD, safe='')}@127.0.0.1:3306/{TEST_DATABASE}"
    )
    assert celery_side_errors(backend) == []
    assert django_query(backend, "SELECT CURRENT_USER()").startswith(f"{odd_user}@")


@pytest.mark.services("mysql")
def test_the_same_password_unencoded_is_refused_clearly(odd_user: str) -> None:
    backend = f"db+mysql://{odd_user}:{ODD_PASSWORD}@127.0.0.1:3306/{TEST_DATABASE}"
    with override_settings(CELERY_RESULT_BACKEND=backend):
        with pytest.raises(BackendURLError, match="CELERY_RESULT_BACKEND cannot be parsed"):
            result_database()


@pytest.mark.services("mysql")
def test_a_mariadb_unix_socket_works_on_both_sides() -> None:
    backend = f"db+mysql://root@/{TEST_DATABASE}?unix_socket=/run/mysqld/mysqld.sock"
    assert celery_side_errors(backend) == []
    assert django_query(backend, "SELECT DATABASE()") == TEST_DATABASE


@pytest.mark.services("postgresql")
def test_a_postgresql_socket_directory_works_on_both_sides() -> None:
    backend = f"db+postgresql+psycopg://postgres@/{TEST_DATABASE}?host=/var/run/postgresql"
    assert celery_side_errors(backend) == []
    assert django_query(backend, "SELECT current_database()") == TEST_DATABASE
