"""UrlMapping between Celery's ``db+`` result backend URL and Django's ``DATABASES``.

Both directions go through SQLAlchemy's :class:`~sqlalchemy.engine.URL` (``make_url`` to read,
``URL.create`` to write), so passwords with special characters, ports, unix sockets and
driver options survive unchanged; nothing here formats a URL by hand. What each database
does with its options is in :mod:`celery_sa.db.adapters`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from celery_sa.db import adapters
from celery_sa.db.adapters import Driver, UrlMapping
from celery_sa.errors import NoDatabaseURL, UnparsableURL, UnsupportedDatabase
from celery_sa.errors import translated as _
from celery_sa.sql.vendors import NAMES

# Celery's database backend, and celery_sa's (celery_sa.backend), on the same tables.
BACKEND_PREFIXES = ("db+", "celery_sa+")

# Options Django's backends consume themselves; they are not DB-API connect arguments.
DJANGO_ONLY_OPTIONS = {
    "isolation_level",
    "server_side_binding",
    "assume_role",
    "pool",
    "transaction_mode",
}


def parse_result_backend(value: str | None) -> URL:
    """Return the SQLAlchemy URL inside a ``db+…`` (or ``celery_sa+…``) result backend URL.

    Raises a :class:`~celery_sa.errors.BackendURLError` when the value is missing, is not
    a database backend URL, cannot be parsed, or names a database celery_sa does not support.
    """
    if not value:
        raise NoDatabaseURL(_("CELERY_RESULT_BACKEND is not set."))
    prefix = next((p for p in BACKEND_PREFIXES if value.startswith(p)), None)
    if prefix is None:
        # The scheme only: the rest of a malformed value may hold a password.
        scheme = value.partition(":")[0].partition("/")[0] if ":" in value else ""
        raise NoDatabaseURL(
            _(
                "CELERY_RESULT_BACKEND is not a database result backend URL "
                "(scheme %(scheme)r; it must start with 'db+' or 'celery_sa+')."
            )
            % {"scheme": scheme}
        )
    try:
        # SQLAlchemy's messages name the part that is wrong, never the whole value.
        url = make_url(value.removeprefix(prefix))
        backend = url.get_backend_name()
    except (ArgumentError, ValueError) as exc:
        message = _("CELERY_RESULT_BACKEND cannot be parsed: %(error)s") % {"error": exc}
        raise UnparsableURL(message) from None
    if backend not in NAMES:
        raise UnsupportedDatabase(
            _(
                "CELERY_RESULT_BACKEND names database %(name)r, which celery_sa does not "
                "support (supported: %(supported)s)."
            )
            % {"name": backend, "supported": ", ".join(sorted(NAMES))}
        )
    return url


def mapping_of(url: URL) -> UrlMapping:
    """The mapping of a URL :func:`parse_result_backend` accepted."""
    return adapters.get_mapping(url.get_backend_name())


def celery_driver(url: URL) -> Driver:
    """The driver module Celery's SQLAlchemy engine imports for ``url``."""
    try:
        driver = url.get_driver_name()
    except NoSuchModuleError:
        driver = url.drivername.partition("+")[2]
    try:
        return mapping_of(url).celery_drivers[(url.get_backend_name(), driver)]
    except KeyError:
        supported = sorted(
            f"{backend}+{name}" for t in adapters.MAPPINGS for backend, name in t.celery_drivers
        )
        raise UnsupportedDatabase(
            _(
                "CELERY_RESULT_BACKEND uses driver %(driver)r, which celery_sa does not "
                "support (supported: %(supported)s)."
            )
            % {"driver": url.drivername, "supported": ", ".join(supported)}
        ) from None


def django_database_settings(url: URL) -> dict[str, Any]:
    """The ``DATABASES`` entry that makes Django's ORM read the database at ``url``."""
    mapping = mapping_of(url)
    config: dict[str, Any] = {
        "ENGINE": mapping.django_engine,
        "NAME": url.database or "",
        "USER": url.username or "",
        "PASSWORD": url.password or "",
        "HOST": url.host or "",
        "PORT": str(url.port) if url.port else "",
        "OPTIONS": {},
    }
    query = {key: _single(value) for key, value in url.query.items()}
    mapping.to_django(config, query)
    return config


def sqlalchemy_url(config: dict[str, Any], drivername: str | None = None) -> URL:
    """The SQLAlchemy URL of a Django ``DATABASES`` entry (e.g. to give a worker).

    ``drivername`` defaults to the driver Django itself uses for that database.
    """
    engine = config["ENGINE"]
    mapping = adapters.find_mapping_for_engine(engine)
    if mapping is None:
        raise UnsupportedDatabase(
            _("Database engine %(engine)r is not supported by celery_sa.") % {"engine": engine}
        )
    options = {
        key: value
        for key, value in (config.get("OPTIONS") or {}).items()
        if key not in DJANGO_ONLY_OPTIONS
    }
    options, host = mapping.from_django(options, str(config.get("HOST") or "") or None)
    port = config.get("PORT")
    return URL.create(
        drivername or mapping.default_drivername(),
        username=config.get("USER") or None,
        password=config.get("PASSWORD") or None,
        host=host,
        port=int(port) if port else None,
        database=str(config.get("NAME") or "") or None,
        query={key: str(value) for key, value in options.items() if _scalar(value)},
    )


def database_identity(config: dict[str, Any]) -> tuple[str, ...]:
    """What makes two ``DATABASES`` entries the same database, for comparison."""
    engine = str(config.get("ENGINE", ""))
    mapping = adapters.find_mapping_for_engine(engine)
    return mapping.identity(config) if mapping else (engine,)


def _single(value: str | tuple[str, ...]) -> str:
    return value[-1] if isinstance(value, tuple) else value


def _scalar(value: object) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)
