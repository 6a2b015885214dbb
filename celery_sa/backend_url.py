"""Translation between Celery's ``db+`` result backend URL and Django's ``DATABASES``.

Both directions go through SQLAlchemy's :class:`~sqlalchemy.engine.URL` (``make_url`` to read,
``URL.create`` to write), so passwords with special characters, ports, unix sockets and
driver options survive unchanged; nothing here formats a URL by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

BACKEND_PREFIX = "db+"

ENGINES = {
    "mysql": "django.db.backends.mysql",
    "mariadb": "django.db.backends.mysql",
    "postgresql": "django.db.backends.postgresql",
    "sqlite": "django.db.backends.sqlite3",
    "mssql": "mssql",
}
VENDORS = {engine: backend for backend, engine in ENGINES.items() if backend != "mariadb"}
DEFAULT_PORTS = {"mysql": "3306", "mariadb": "3306", "postgresql": "5432", "mssql": "1433"}

# Options Django's backends consume themselves; they are not DB-API connect arguments.
DJANGO_ONLY_OPTIONS = {
    "isolation_level",
    "server_side_binding",
    "assume_role",
    "pool",
    "transaction_mode",
}
MYSQL_SSL_KEYS = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_capath", "ssl_cipher")
MYSQL_INT_OPTIONS = ("connect_timeout", "read_timeout", "write_timeout", "local_infile")


class BackendURLError(ValueError):
    """``CELERY_RESULT_BACKEND`` cannot be used; the message is one line saying why.

    ``check_id`` is the system check that reports it.
    """

    def __init__(self, message: str, check_id: str = "celery_sa.E003") -> None:
        super().__init__(message)
        self.check_id = check_id


@dataclass(frozen=True)
class Driver:
    """A Python module that must be importable, and the pip package that provides it."""

    module: str
    package: str


CELERY_DRIVERS = {
    ("mysql", "mysqldb"): Driver("MySQLdb", "mysqlclient"),
    ("mysql", "pymysql"): Driver("pymysql", "PyMySQL"),
    ("mariadb", "mysqldb"): Driver("MySQLdb", "mysqlclient"),
    ("mariadb", "pymysql"): Driver("pymysql", "PyMySQL"),
    ("mariadb", "mariadbconnector"): Driver("mariadb", "mariadb"),
    ("postgresql", "psycopg"): Driver("psycopg", "psycopg[binary]"),
    ("postgresql", "psycopg2"): Driver("psycopg2", "psycopg2-binary"),
    ("sqlite", "pysqlite"): Driver("sqlite3", "Python's sqlite3 module"),
    ("mssql", "pyodbc"): Driver("pyodbc", "pyodbc"),
}
# What Django's own backend for the same database imports (any one of them will do).
DJANGO_DRIVERS = {
    "django.db.backends.mysql": (Driver("MySQLdb", "mysqlclient"),),
    "django.db.backends.postgresql": (
        Driver("psycopg", "psycopg[binary]"),
        Driver("psycopg2", "psycopg2-binary"),
    ),
    "django.db.backends.sqlite3": (Driver("sqlite3", "Python's sqlite3 module"),),
    "mssql": (Driver("mssql", "mssql-django"),),
}


def parse_result_backend(value: str | None) -> URL:
    """Return the SQLAlchemy URL inside a ``db+…`` result backend URL.

    Raises :class:`BackendURLError` when the value is missing, is not a database backend
    URL, cannot be parsed, or names a database celery_sa does not support.
    """
    if not value:
        raise BackendURLError("CELERY_RESULT_BACKEND is not set.", "celery_sa.E001")
    if not value.startswith(BACKEND_PREFIX) or "://" not in value:
        scheme = value.partition("://")[0] if "://" in value else value
        raise BackendURLError(
            f"CELERY_RESULT_BACKEND is not a database result backend URL "
            f"(scheme {scheme!r}; it must start with 'db+').",
            "celery_sa.E001",
        )
    try:
        url = make_url(value[len(BACKEND_PREFIX) :])
        backend = url.get_backend_name()
    except (ArgumentError, ValueError) as exc:
        raise BackendURLError(
            f"CELERY_RESULT_BACKEND cannot be parsed: {exc}", "celery_sa.E002"
        ) from None
    if backend not in ENGINES:
        raise BackendURLError(
            f"CELERY_RESULT_BACKEND names database {backend!r}, which celery_sa does not "
            f"support (supported: {', '.join(sorted(ENGINES))})."
        )
    return url


def celery_driver(url: URL) -> Driver:
    """The driver module Celery's SQLAlchemy engine imports for ``url``."""
    backend = url.get_backend_name()
    try:
        driver = url.get_driver_name()
    except NoSuchModuleError:
        driver = url.drivername.partition("+")[2]
    try:
        return CELERY_DRIVERS[(backend, driver)]
    except KeyError:
        raise BackendURLError(
            f"CELERY_RESULT_BACKEND uses driver {url.drivername!r}, which celery_sa does not "
            f"support (supported: {', '.join(sorted({f'{b}+{d}' for b, d in CELERY_DRIVERS}))})."
        ) from None


def django_database_settings(url: URL) -> dict[str, Any]:
    """The ``DATABASES`` entry that makes Django's ORM read the database at ``url``."""
    backend = url.get_backend_name()
    query = {key: _single(value) for key, value in url.query.items()}
    config: dict[str, Any] = {
        "ENGINE": ENGINES[backend],
        "NAME": url.database or "",
        "USER": url.username or "",
        "PASSWORD": url.password or "",
        "HOST": url.host or "",
        "PORT": str(url.port) if url.port else "",
        "OPTIONS": {},
    }
    translate = {
        "mysql": _mysql_options,
        "mariadb": _mysql_options,
        "postgresql": _postgresql_options,
        "sqlite": _sqlite_options,
        "mssql": _mssql_options,
    }[backend]
    translate(config, query)
    return config


def sqlalchemy_url(config: dict[str, Any], drivername: str | None = None) -> URL:
    """The SQLAlchemy URL of a Django ``DATABASES`` entry (e.g. to give a worker).

    ``drivername`` defaults to the driver Django itself uses for that database.
    """
    engine = config["ENGINE"]
    try:
        backend = VENDORS[engine]
    except KeyError:
        raise BackendURLError(
            f"Database engine {engine!r} is not supported by celery_sa."
        ) from None
    options = {
        key: value
        for key, value in (config.get("OPTIONS") or {}).items()
        if key not in DJANGO_ONLY_OPTIONS
    }
    host = str(config.get("HOST") or "") or None
    query: dict[str, str] = {}
    if backend == "mysql":
        for key, value in (options.pop("ssl", None) or {}).items():
            query[f"ssl_{key}"] = str(value)
        if host and host.startswith("/"):
            query["unix_socket"], host = host, None
    elif backend == "postgresql" and host and host.startswith("/"):
        query["host"], host = host, None
    elif backend == "mssql":
        for pair in str(options.pop("extra_params", "") or "").split(";"):
            key, sep, value = pair.partition("=")
            if sep:
                query[key.strip()] = value.strip()
    elif backend == "sqlite":
        options = {key: value for key, value in options.items() if key == "timeout"}
    query.update({key: str(value) for key, value in options.items() if _scalar(value)})
    port = config.get("PORT")
    return URL.create(
        drivername or _default_drivername(backend),
        username=config.get("USER") or None,
        password=config.get("PASSWORD") or None,
        host=host,
        port=int(port) if port else None,
        database=str(config.get("NAME") or "") or None,
        query=query,
    )


def database_identity(config: dict[str, Any]) -> tuple[str, ...]:
    """What makes two ``DATABASES`` entries the same database, for comparison."""
    engine = str(config.get("ENGINE", ""))
    backend = VENDORS.get(engine, engine)
    name = str(config.get("NAME") or "")
    if backend == "sqlite":
        return (backend, os.path.realpath(name) if name else "")
    host = str(config.get("HOST") or "") or "localhost"
    port = str(config.get("PORT") or "") or DEFAULT_PORTS.get(backend, "")
    return (backend, host, port, name)


def _mysql_options(config: dict[str, Any], query: dict[str, str]) -> None:
    if "unix_socket" in query:
        config["HOST"] = query.pop("unix_socket")
    ssl = {key[len("ssl_") :]: query.pop(key) for key in MYSQL_SSL_KEYS if key in query}
    if ssl:
        config["OPTIONS"]["ssl"] = ssl
    for key, value in query.items():
        config["OPTIONS"][key] = int(value) if key in MYSQL_INT_OPTIONS else value


def _postgresql_options(config: dict[str, Any], query: dict[str, str]) -> None:
    if "host" in query:
        config["HOST"] = query.pop("host")
    if "port" in query:
        config["PORT"] = query.pop("port")
    config["OPTIONS"].update(query)


def _sqlite_options(config: dict[str, Any], query: dict[str, str]) -> None:
    name = config["NAME"]
    if not name or name == ":memory:" or query.get("mode") == "memory":
        raise BackendURLError(
            "CELERY_RESULT_BACKEND is an in-memory SQLite database, which workers and Django "
            "cannot share; give a file path (db+sqlite:////absolute/path/results.sqlite3)."
        )
    config["NAME"] = os.path.abspath(name)
    if "timeout" in query:
        config["OPTIONS"]["timeout"] = float(query["timeout"])
    head, tail = os.path.split(config["NAME"])
    # Django's default test database for SQLite is in memory, which a worker subprocess
    # cannot see; keep it a file beside the real one.
    config["TEST"] = {"NAME": os.path.join(head, f"test_{tail}")}


def _mssql_options(config: dict[str, Any], query: dict[str, str]) -> None:
    if "odbc_connect" in query:
        raise BackendURLError(
            "CELERY_RESULT_BACKEND uses odbc_connect, which celery_sa cannot translate for "
            "Django; give host, port and database in the URL and ?driver=… instead."
        )
    if "driver" in query:
        config["OPTIONS"]["driver"] = query.pop("driver")
    if query:
        config["OPTIONS"]["extra_params"] = ";".join(f"{k}={v}" for k, v in query.items())


def _default_drivername(backend: str) -> str:
    if backend == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "postgresql+psycopg2"
        return "postgresql+psycopg"
    return {"mysql": "mysql+mysqldb", "sqlite": "sqlite", "mssql": "mssql+pyodbc"}[backend]


def _single(value: str | tuple[str, ...]) -> str:
    return value[-1] if isinstance(value, tuple) else value


def _scalar(value: object) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)
