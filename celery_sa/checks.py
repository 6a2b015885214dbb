"""System checks: misconfiguration shows up in ``manage.py check`` with a fix-it hint.

The checks that connect to the result database are tagged ``database`` (Django runs those
only for ``check --database …`` and ``migrate``), so an offline build step never connects.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import celery
from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils.text import get_text_list
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from celery_sa.conf import TABLE_KEYS, app_settings
from celery_sa.db import ResultDatabase, adapters, result_database
from celery_sa.db.adapters import Driver
from celery_sa.db.replica import replica_alias
from celery_sa.db.url import celery_driver, parse_result_backend
from celery_sa.errors import (
    AliasTaken,
    BackendURLError,
    NoDatabaseURL,
    UnparsableURL,
    UnsupportedDatabase,
    cannot_connect,
)
from celery_sa.sql.vendors import NAMES

ROUTER = "celery_sa.routers.ResultDatabaseRouter"
EXAMPLE_URL = "db+postgresql+psycopg://user:password@host:5432/dbname"
# Each way CELERY_RESULT_BACKEND can be wrong: its check id.
URL_CHECK_IDS: dict[type[BackendURLError], str] = {
    NoDatabaseURL: "celery_sa.E001",
    UnparsableURL: "celery_sa.E002",
    UnsupportedDatabase: "celery_sa.E003",
    AliasTaken: "celery_sa.E008",
}


def _url_hint(error: type[BackendURLError]) -> str:
    """The fix for each way CELERY_RESULT_BACKEND can be wrong, in the active language."""
    if error is NoDatabaseURL:
        # Translators: "example" is a database URL such as db+postgresql+psycopg://….
        return _('Set CELERY_RESULT_BACKEND to a database URL, e.g. "%(example)s".') % {
            "example": EXAMPLE_URL
        }
    if error is UnparsableURL:
        return _(
            "Check the URL's syntax; percent-encode special characters in the user name and "
            "password (urllib.parse.quote(password, safe=''))."
        )
    if error is UnsupportedDatabase:
        return _(
            # Translators: "backends" is a comma-separated list of URL schemes (mssql, mysql, …).
            "Use one of: %(backends)s, with a file path for SQLite (e.g. db+mysql://…, "
            "db+mysql+pymysql://…, db+postgresql+psycopg://…, "
            "db+sqlite:////path/results.sqlite3, db+mssql+pyodbc://…)."
        ) % {"backends": ", ".join(sorted(NAMES))}
    return _("Set CELERY_SA_DATABASE_ALIAS to an alias that DATABASES does not use.")


@register()
def check_settings(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[CheckMessage]:
    """The table settings, the metrics window, the admin's limits, the result backend URL,
    its drivers, the router, Celery's engine options and CELERY_RESULT_EXTENDED."""
    messages: list[CheckMessage] = [
        *_check_table_settings(),
        *_check_metrics_window(),
        *_check_admin_limits(),
        *_check_backend_retry_timeout(),
        *_check_chord_sweep_interval(),
        *_check_chord_stuck_after(),
        *_check_read_replica(),
        *_check_track_sent(),
    ]
    try:
        driver = celery_driver(parse_result_backend(app_settings.result_backend))
        database = result_database()
    except BackendURLError as exc:
        # The message is celery_sa.db's own (translated: Django is set up here).
        error = type(exc)
        return [*messages, Error(str(exc), hint=_url_hint(error), id=URL_CHECK_IDS[error])]
    return [
        *messages,
        *_check_celery_driver(driver),
        *_check_django_driver(database),
        *_check_router(database),
        *_check_engine_options(),
        *_check_result_extended(),
    ]


def _check_celery_driver(driver: Driver) -> list[CheckMessage]:
    return _missing_driver(
        driver,
        "celery_sa.E004",
        # Translators: "modules" names Python modules with the pip command that installs
        # each, e.g. "'pymysql' (pip install PyMySQL)".
        _("Celery's result backend needs the module %(modules)s, which is not installed."),
    )


def _check_django_driver(database: ResultDatabase) -> list[CheckMessage]:
    engine = str(app_settings.databases[database.alias]["ENGINE"])
    mapping = adapters.find_mapping_for_engine(engine)
    if mapping is None:
        return []
    return _missing_driver(
        mapping.django_drivers,
        "celery_sa.E005",
        # Translators: "engine" is a Django database backend's dotted path; "modules"
        # names Python modules with the pip command that installs each, e.g.
        # "'psycopg' (pip install psycopg[binary]) or 'psycopg2' (pip install …)".
        _("Django's %(engine)s backend needs the module %(modules)s, which is not installed."),
        engine=engine,
    )


def _check_router(database: ResultDatabase) -> list[CheckMessage]:
    if database.alias == DEFAULT_DB_ALIAS or ROUTER in app_settings.database_routers:
        return []
    return [
        Error(
            _(
                # Translators: "alias" is a quoted DATABASES key, "router" a dotted path.
                "The result database is DATABASES[%(alias)s], but %(router)s is not in "
                "DATABASE_ROUTERS, so the admin would look for Celery's tables in 'default'."
            )
            % {"alias": repr(database.alias), "router": ROUTER},
            # Translators: "router" is a dotted path to add to the DATABASE_ROUTERS setting.
            hint=_('Add "%(router)s" to DATABASE_ROUTERS.') % {"router": ROUTER},
            id="celery_sa.E006",
        )
    ]


def _check_engine_options() -> list[CheckMessage]:
    if not (
        celery.VERSION < (5, 6)
        and "max_overflow" in app_settings.database_engine_options
        and str(app_settings.result_backend).startswith("db+")
    ):
        return []
    return [
        Error(
            _(
                "Celery %(version)s builds the worker's first result engine without a "
                "pool and refuses max_overflow in CELERY_DATABASE_ENGINE_OPTIONS: the "
                "worker would not start."
            )
            % {"version": celery.__version__},
            hint=_(
                "Remove max_overflow from CELERY_DATABASE_ENGINE_OPTIONS, upgrade Celery "
                "to 5.6 or newer, or use celery_sa's backend (celery_sa+…)."
            ),
            id="celery_sa.E010",
        )
    ]


def _check_result_extended() -> list[CheckMessage]:
    if app_settings.result_extended:
        return []
    return [
        Warning(
            _(
                "CELERY_RESULT_EXTENDED is off: Celery stores no task name, args, kwargs, "
                "worker, queue or retries, so those admin columns stay empty."
            ),
            hint=_("Set CELERY_RESULT_EXTENDED = True."),
            id="celery_sa.W001",
        )
    ]


@register(Tags.database)
def check_result_database(
    app_configs: Sequence[AppConfig] | None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    """Connect to the result database as Celery does and look for the result tables; and
    to the read replica, when one is set."""
    if not databases:
        return []
    try:
        database = result_database()
    except BackendURLError:
        return []  # check_settings reports it.
    return [*probe(database), *_probe_replica()]


def _probe_replica() -> list[CheckMessage]:
    try:
        alias = replica_alias()
    except BackendURLError:
        return []  # check_settings reports it (celery_sa.E018).
    if alias is None:
        return []
    try:
        connections[alias].ensure_connection()
    except DatabaseError as exc:
        return [
            Warning(
                # Translators: "alias" is a Django database alias, "error" the exception's
                # class name.
                _(
                    "Cannot connect to the read replica %(alias)s (%(error)s): the admin, "
                    "the overview, the metrics and celery_sa_stats will read from the result "
                    "database until it answers."
                )
                % {"alias": alias, "error": type(exc).__name__},
                hint=_("Check CELERY_SA_READ_REPLICA and that the replica is running."),
                id="celery_sa.W004",
            )
        ]
    return []


def _check_read_replica() -> list[CheckMessage]:
    try:
        replica_alias()
    except BackendURLError as exc:
        return [
            Error(
                str(exc),
                hint=_(
                    "Name an alias in DATABASES, or give a URL as for CELERY_RESULT_BACKEND "
                    "(db+postgresql://…)."
                ),
                id="celery_sa.E018",
            )
        ]
    return []


def probe(database: ResultDatabase) -> list[CheckMessage]:
    """Connect to ``database`` through Celery's own URL and driver; report what fails."""
    try:
        engine = create_engine(database.url, poolclass=NullPool)
    except ImportError:
        return []  # check_settings reports the missing driver (celery_sa.E004).
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            missing = [
                app_settings.table_name(key)
                for key in TABLE_KEYS
                if not inspector.has_table(
                    app_settings.table_name(key), schema=app_settings.table_schema(key)
                )
            ]
    except SQLAlchemyError as exc:
        return [
            Error(
                cannot_connect(database.url, exc),
                hint=_(
                    "Check the host, port, user, password and database name in "
                    "CELERY_RESULT_BACKEND, and that the server is running."
                ),
                id="celery_sa.E009",
            )
        ]
    finally:
        engine.dispose()
    return _missing_tables(missing)


def _missing_tables(missing: list[str]) -> list[CheckMessage]:
    if not missing:
        return []
    return [
        Warning(
            ngettext(
                # Translators: "tables" is one table name or a comma-separated list of them.
                "The result table %(tables)s does not exist yet.",
                "The result tables %(tables)s do not exist yet.",
                len(missing),
            )
            % {"tables": ", ".join(missing)},
            hint=_("Run: python manage.py celery_sa_tables create"),
            id="celery_sa.W002",
        )
    ]


def _check_metrics_window() -> list[CheckMessage]:
    if app_settings.metrics_window is not None:
        return []
    return [
        Error(
            # Translators: value is the setting's value as Python writes it.
            _("CELERY_SA_METRICS_WINDOW is %(value)s: it must be a positive duration.")
            % {"value": repr(getattr(settings, "CELERY_SA_METRICS_WINDOW", None))},
            hint=_("Give a number of seconds (3600) or a timedelta(hours=1)."),
            id="celery_sa.E011",
        )
    ]


def _check_admin_limits() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for setting, value in (
        ("CELERY_SA_DECODE_LIMIT", app_settings.decode_limit),
        ("CELERY_SA_EXPORT_MAX_ROWS", app_settings.export_max_rows),
        ("CELERY_SA_ACTION_MAX_ROWS", app_settings.action_max_rows),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            messages.append(
                Error(
                    # Translators: "setting" is a setting's name, "value" its value as Python
                    # writes it.
                    _("%(setting)s is %(value)s: it must be a positive whole number.")
                    % {"setting": setting, "value": repr(value)},
                    hint=_("e.g. 1048576 for the decode limit, 10000 for the export."),
                    id="celery_sa.E012",
                )
            )
    names = app_settings.rerun_tasks
    if names is not None and (
        not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names)
    ):
        messages.append(
            Error(
                # Translators: "value" is the setting's value as Python writes it.
                _("CELERY_SA_RERUN_TASKS must be a list of task names or patterns, not %(value)s.")
                % {"value": repr(names)},
                hint=_('e.g. CELERY_SA_RERUN_TASKS = ["billing.*", "reports.rebuild"]'),
                id="celery_sa.E013",
            )
        )
    return messages


def _seconds(duration: Any) -> float | None:
    """The seconds a duration setting gives (a number or a timedelta); None for anything
    else (a bool, a string)."""
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    return float(seconds)


def _check_backend_retry_timeout() -> list[CheckMessage]:
    timeout = app_settings.backend_retry_timeout
    seconds = _seconds(timeout)
    if seconds is not None and seconds > 0:
        return []
    return [
        Error(
            # Translators: "value" is the setting's value as Python writes it.
            _("CELERY_SA_BACKEND_RETRY_TIMEOUT is %(value)s: it must be a positive duration.")
            % {"value": repr(timeout)},
            hint=_("Give a number of seconds (120) or a timedelta(minutes=2)."),
            id="celery_sa.E014",
        )
    ]


def _check_chord_sweep_interval() -> list[CheckMessage]:
    interval = app_settings.chord_sweep_interval
    seconds = _seconds(interval)
    if seconds is not None and seconds >= 0:
        return []
    return [
        Error(
            # Translators: "value" is the setting's value as Python writes it.
            _("CELERY_SA_CHORD_SWEEP_INTERVAL is %(value)s: it must be a duration, or 0.")
            % {"value": repr(interval)},
            hint=_("Give a number of seconds (60), a timedelta, or 0 to turn the sweep off."),
            id="celery_sa.E015",
        )
    ]


def _check_chord_stuck_after() -> list[CheckMessage]:
    after = app_settings.chord_stuck_after
    seconds = _seconds(after)
    if seconds is not None and seconds > 0:
        return []
    return [
        Error(
            # Translators: "value" is the setting's value as Python writes it.
            _("CELERY_SA_CHORD_STUCK_AFTER is %(value)s: it must be a positive duration.")
            % {"value": repr(after)},
            hint=_("Give a number of seconds (3600) or a timedelta(hours=1)."),
            id="celery_sa.E017",
        )
    ]


def _check_track_sent() -> list[CheckMessage]:
    track, delay = app_settings.track_sent, app_settings.track_sent_delay
    seconds = _seconds(delay)
    if seconds is None or not seconds >= 0:
        return [
            Error(
                # Translators: "value" is the setting's value as Python writes it.
                _("CELERY_SA_TRACK_SENT_DELAY is %(value)s: it must be a duration, or 0.")
                % {"value": repr(delay)},
                hint=_(
                    "Give a number of seconds (0.05), a timedelta, or 0 to write each row "
                    "before its message leaves."
                ),
                id="celery_sa.E016",
            )
        ]
    if not isinstance(track, bool):
        return [
            Error(
                # Translators: "value" is the setting's value as Python writes it.
                _("CELERY_SA_TRACK_SENT is %(value)s: it must be True or False.")
                % {"value": repr(track)},
                hint=_("Set it to True to write a PENDING row for each task published."),
                id="celery_sa.E016",
            )
        ]
    if track and not str(app_settings.result_backend).startswith("celery_sa+"):
        return [
            Warning(
                _(
                    "CELERY_SA_TRACK_SENT is on, but the result backend is not celery_sa's: "
                    "no PENDING row is written when a task is published."
                ),
                hint=_('Use celery_sa\'s backend (CELERY_RESULT_BACKEND = "celery_sa+…").'),
                id="celery_sa.W003",
            )
        ]
    return []


def _check_table_settings() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for setting, value in (
        ("CELERY_DATABASE_TABLE_NAMES", app_settings.table_names),
        ("CELERY_DATABASE_TABLE_SCHEMAS", app_settings.table_schemas),
    ):
        valid = isinstance(value, dict) and all(
            key in TABLE_KEYS and isinstance(item, str) and item for key, item in value.items()
        )
        if not valid:
            messages.append(
                Error(
                    _(
                        # Translators: "setting" is a setting's name, "value" its value as Python
                        # writes it.
                        "%(setting)s must be a dict with the keys 'task' and/or 'group' and "
                        "non-empty string values, not %(value)s."
                    )
                    % {"setting": setting, "value": repr(value)},
                    hint=_(
                        # Translators: "setting" is a setting's name; keep the Python dict and
                        # the environment variable's value (task=…,group=…) as they are.
                        'e.g. %(setting)s = {"task": "…", "group": "…"}; in an environment '
                        "variable: task=…,group=…"
                    )
                    % {"setting": setting},
                    id="celery_sa.E007",
                )
            )
    return messages


def _missing_driver(
    drivers: Driver | tuple[Driver, ...], check_id: str, message: str, **params: str
) -> list[CheckMessage]:
    """``message`` (with ``%(modules)s`` and ``params``) when none of ``drivers`` is installed."""
    options = drivers if isinstance(drivers, tuple) else (drivers,)
    if any(importlib.util.find_spec(driver.module) for driver in options):
        return []
    # Translators: joins the last two of a list of Python modules ("'a', 'b' or 'c'").
    last_word = _("or")
    wanted = get_text_list([f"{d.module!r} (pip install {d.package})" for d in options], last_word)
    return [
        Error(
            message % {**params, "modules": wanted},
            hint=f"pip install {options[0].package}",
            id=check_id,
        )
    ]
