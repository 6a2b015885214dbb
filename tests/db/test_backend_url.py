"""CELERY_RESULT_BACKEND becomes a Django DATABASES entry, and back, losing nothing."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy.engine import make_url

from celery_sa.db.url import (
    celery_driver,
    database_identity,
    django_database_settings,
    parse_result_backend,
    sqlalchemy_url,
)
from celery_sa.errors import (
    BackendURLError,
    NoDatabaseURL,
    UnparsableURL,
    UnsupportedDatabase,
)
from tests.support.commands import python_without_settings


def settings_for(backend: str) -> dict[str, object]:
    return django_database_settings(parse_result_backend(backend))


def test_a_password_with_special_characters_survives() -> None:
    config = settings_for("db+mysql://us%40er:p%40ss%3Aw%2Fd%23%25@db.example.com:3307/results")
    assert config == {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "results",
        "USER": "us@er",
        "PASSWORD": "p@ss:w/d#%",
        "HOST": "db.example.com",
        "PORT": "3307",
        "OPTIONS": {},
    }


def test_mysql_unix_socket_becomes_django_host_and_options_carry_over() -> None:
    config = settings_for(
        "db+mysql://root@/results?unix_socket=/run/mysqld/mysqld.sock"
        "&charset=utf8mb4&ssl_ca=/etc/ca.pem&connect_timeout=5"
    )
    assert config["HOST"] == "/run/mysqld/mysqld.sock"
    assert config["OPTIONS"] == {
        "charset": "utf8mb4",
        "ssl": {"ca": "/etc/ca.pem"},
        "connect_timeout": 5,
    }


def test_pymysql_results_are_read_by_djangos_mysql_backend() -> None:
    assert settings_for("db+mysql+pymysql://u@h/r")["ENGINE"] == "django.db.backends.mysql"
    assert celery_driver(parse_result_backend("db+mysql+pymysql://u@h/r")).package == "PyMySQL"
    assert celery_driver(parse_result_backend("db+mysql://u@h/r")).package == "mysqlclient"


def test_postgresql_socket_directory_and_libpq_options() -> None:
    config = settings_for(
        "db+postgresql+psycopg://app@/results?host=/var/run/postgresql&sslmode=require"
        "&application_name=celery"
    )
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["HOST"] == "/var/run/postgresql"
    assert config["OPTIONS"] == {"sslmode": "require", "application_name": "celery"}


def test_sqlite_path_is_made_absolute_with_a_file_test_database(tmp_path: object) -> None:
    config = settings_for("db+sqlite:///relative/results.sqlite3?timeout=20")
    expected = os.path.abspath("relative/results.sqlite3")
    assert config["NAME"] == expected
    assert config["OPTIONS"] == {"timeout": 20.0}
    assert config["TEST"] == {
        "NAME": os.path.join(os.path.dirname(expected), "test_results.sqlite3")
    }


@pytest.mark.parametrize("backend", ["db+sqlite://", "db+sqlite:///:memory:"])
def test_an_in_memory_sqlite_result_database_is_refused(backend: str) -> None:
    with pytest.raises(UnsupportedDatabase, match="in-memory"):
        settings_for(backend)


def test_sql_server_driver_and_extra_parameters() -> None:
    config = settings_for(
        "db+mssql+pyodbc://sa:Pa%24%24w0rd@sql.example.com:1433/results"
        "?driver=ODBC+Driver+18+for+SQL+Server&TrustServerCertificate=yes"
    )
    assert config["ENGINE"] == "mssql"
    assert config["PASSWORD"] == "Pa$$w0rd"
    assert config["OPTIONS"] == {
        "driver": "ODBC Driver 18 for SQL Server",
        "extra_params": "TrustServerCertificate=yes",
    }


@pytest.mark.parametrize(
    "backend",
    [
        "db+mysql://us%40er:p%40ss%3Aw%2Fd@db.example.com:3307/results?charset=utf8mb4",
        "db+mysql+pymysql://root@/results?unix_socket=/run/mysqld/mysqld.sock",
        "db+mysql://root@h/results?ssl_ca=/etc/ca.pem&ssl_cert=/etc/cert.pem",
        "db+postgresql+psycopg://app:s3cr%2Ft@pg.example.com:5433/results?sslmode=require",
        "db+postgresql+psycopg://app@/results?host=/var/run/postgresql",
        "db+sqlite:////var/lib/celery/results.sqlite3",
        "db+mssql+pyodbc://sa:Pa%24%24@sql.example.com:1433/results?driver=ODBC+Driver+18",
    ],
)
def test_the_translation_round_trips(backend: str) -> None:
    url = parse_result_backend(backend)
    back = sqlalchemy_url(django_database_settings(url), url.drivername)
    assert back == url
    assert make_url(back.render_as_string(hide_password=False)) == url


def test_the_driver_defaults_to_the_one_django_uses() -> None:
    config = {"ENGINE": "django.db.backends.mysql", "NAME": "r", "HOST": "h"}
    assert sqlalchemy_url(config).drivername == "mysql+mysqldb"
    config = {"ENGINE": "django.db.backends.postgresql", "NAME": "r", "HOST": "h"}
    assert sqlalchemy_url(config).drivername == "postgresql+psycopg"


def test_django_only_options_stay_out_of_the_url() -> None:
    config = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "r",
        "OPTIONS": {"isolation_level": 1, "server_side_binding": True, "sslmode": "require"},
    }
    assert dict(sqlalchemy_url(config).query) == {"sslmode": "require"}


@pytest.mark.parametrize(
    ("backend", "error", "message"),
    [
        (None, NoDatabaseURL, "not set"),
        ("redis://localhost:6379/0", NoDatabaseURL, "scheme 'redis'"),
        ("db+mysql://u:p@h:notaport/db", UnparsableURL, "cannot be parsed"),
        ("db+my sql://h/db", UnparsableURL, "cannot be parsed"),
        ("db+oracle://u:p@h/db", UnsupportedDatabase, "'oracle'"),
    ],
)
def test_unusable_urls_name_the_problem(
    backend: str | None, error: type[BackendURLError], message: str
) -> None:
    with pytest.raises(BackendURLError, match=message) as caught:
        parse_result_backend(backend)
    assert type(caught.value) is error


def test_an_unsupported_driver_is_named() -> None:
    with pytest.raises(BackendURLError, match="mysql\\+mysqlconnector"):
        celery_driver(parse_result_backend("db+mysql+mysqlconnector://u@h/db"))


def test_identity_treats_default_host_and_port_as_equal() -> None:
    explicit = {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "r",
        "HOST": "localhost",
        "PORT": "3306",
    }
    implicit = {"ENGINE": "django.db.backends.mysql", "NAME": "r", "HOST": "", "PORT": ""}
    other = {"ENGINE": "django.db.backends.mysql", "NAME": "r", "HOST": "", "PORT": "3307"}
    assert database_identity(explicit) == database_identity(implicit)
    assert database_identity(explicit) != database_identity(other)


def test_celery_sas_backend_url_names_the_same_database_as_celerys() -> None:
    for url in ("mysql+pymysql://u:p@db:3307/results", "postgresql+psycopg://u@db/results"):
        assert parse_result_backend(f"celery_sa+{url}") == parse_result_backend(f"db+{url}")
    with pytest.raises(NoDatabaseURL, match="it must start with 'db\\+' or 'celery_sa\\+'"):
        parse_result_backend("redis://localhost/0")


def test_the_url_functions_raise_their_own_errors_without_django_settings() -> None:
    # They are public: a settings module may call them before Django is set up.
    code = """
import json
from celery_sa.db.url import parse_result_backend, sqlalchemy_url

errors = []
for call in (lambda: parse_result_backend("redis://x"), lambda: sqlalchemy_url({"ENGINE": "x"})):
    try:
        call()
    except Exception as exc:
        errors.append([type(exc).__name__, str(exc)])
print(json.dumps(errors))
"""
    assert json.loads(python_without_settings(code)) == [
        [
            "NoDatabaseURL",
            "CELERY_RESULT_BACKEND is not a database result backend URL (scheme 'redis'; it "
            "must start with 'db+' or 'celery_sa+').",
        ],
        ["UnsupportedDatabase", "Database engine 'x' is not supported by celery_sa."],
    ]
