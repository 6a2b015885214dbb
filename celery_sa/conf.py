"""Typed access to the settings celery_sa reads, with every default in one place.

Celery's own settings keep Celery's names (read with the ``CELERY_`` namespace that
``app.config_from_object("django.conf:settings", namespace="CELERY")`` uses); the app's own
settings are ``CELERY_SA_*``. Values are looked up on every access so that
``override_settings`` works in tests.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery.app.defaults import DEFAULTS
from django.conf import settings

from celery_sa.sql.schema import DEFAULT_TABLE_NAMES, ResultTables, result_tables

TABLE_KEYS = tuple(DEFAULT_TABLE_NAMES)


class AppSettings:
    """The settings of celery_sa, read from ``django.conf.settings`` when asked."""

    @property
    def result_backend(self) -> str | None:
        """``CELERY_RESULT_BACKEND``: Celery's result backend URL (``db+…``)."""
        value = getattr(settings, "CELERY_RESULT_BACKEND", None)
        return str(value) if value is not None else None

    @property
    def result_extended(self) -> bool:
        """``CELERY_RESULT_EXTENDED``: whether Celery stores name, args, worker, …."""
        return bool(getattr(settings, "CELERY_RESULT_EXTENDED", False))

    @property
    def table_names(self) -> Any:
        """``CELERY_DATABASE_TABLE_NAMES`` as the user wrote it (validated by the checks)."""
        return getattr(settings, "CELERY_DATABASE_TABLE_NAMES", None) or {}

    @property
    def table_schemas(self) -> Any:
        """``CELERY_DATABASE_TABLE_SCHEMAS`` as the user wrote it (validated by the checks)."""
        return getattr(settings, "CELERY_DATABASE_TABLE_SCHEMAS", None) or {}

    @property
    def result_serializer(self) -> str:
        """``CELERY_RESULT_SERIALIZER``: how Celery encodes results (Celery's default: json)."""
        return str(getattr(settings, "CELERY_RESULT_SERIALIZER", None) or "json")

    @property
    def result_accept_content(self) -> list[str]:
        """``CELERY_RESULT_ACCEPT_CONTENT``, else ``CELERY_ACCEPT_CONTENT``, as Celery reads
        them: the serializers a stored result may be decoded with."""
        return list(
            getattr(settings, "CELERY_RESULT_ACCEPT_CONTENT", None)
            or getattr(settings, "CELERY_ACCEPT_CONTENT", None)
            or ["json"]
        )

    @property
    def timezone(self) -> str:
        """Celery's time zone: ``CELERY_TIMEZONE``, else Django's ``TIME_ZONE`` as Celery
        itself falls back to; the task table's naive ``date_done`` is wall time there."""
        return str(
            getattr(settings, "CELERY_TIMEZONE", None) or getattr(settings, "TIME_ZONE", "UTC")
        )

    @property
    def result_expires(self) -> timedelta | None:
        """``CELERY_RESULT_EXPIRES`` (seconds or a timedelta; Celery's default: one day):
        the age from which results may be purged. ``None`` or 0: never."""
        value = getattr(settings, "CELERY_RESULT_EXPIRES", DEFAULTS["result_expires"])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = timedelta(seconds=value)
        return value if isinstance(value, timedelta) and value > timedelta(0) else None

    @property
    def metrics_token(self) -> str | None:
        """``CELERY_SA_METRICS_TOKEN``: a secret that lets a scraper read the metrics view
        with ``Authorization: Bearer <token>``; ``None``: only users with the view
        permission on task results may."""
        value = getattr(settings, "CELERY_SA_METRICS_TOKEN", None)
        return str(value) if value else None

    @property
    def metrics_window(self) -> timedelta | None:
        """``CELERY_SA_METRICS_WINDOW``: how far back the metrics count results (seconds or
        a timedelta; default one hour). None when it is not a positive duration (the checks
        report it)."""
        value = getattr(settings, "CELERY_SA_METRICS_WINDOW", timedelta(hours=1))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = timedelta(seconds=value)
        return value if isinstance(value, timedelta) and value > timedelta(0) else None

    @property
    def backend_retry_timeout(self) -> Any:
        """``CELERY_SA_BACKEND_RETRY_TIMEOUT``: how long celery_sa's result backend retries
        an operation the database fails (seconds or a timedelta; default 120). The worker
        reads it through Celery's configuration, as ``sa_backend_retry_timeout``."""
        return getattr(settings, "CELERY_SA_BACKEND_RETRY_TIMEOUT", 120)

    @property
    def chord_sweep_interval(self) -> Any:
        """``CELERY_SA_CHORD_SWEEP_INTERVAL``: how often each worker on celery_sa's backend
        sweeps for chords no returning task will finish (seconds or a timedelta; default 60;
        0 turns the sweep off). The worker reads it as ``sa_chord_sweep_interval``."""
        return getattr(settings, "CELERY_SA_CHORD_SWEEP_INTERVAL", 60)

    @property
    def chord_stuck_after(self) -> Any:
        """``CELERY_SA_CHORD_STUCK_AFTER``: how long a chord may wait for its header before
        the admin, the overview, the metrics and ``celery_sa_stats`` call it stuck (seconds
        or a timedelta; default one hour)."""
        return getattr(settings, "CELERY_SA_CHORD_STUCK_AFTER", timedelta(hours=1))

    @property
    def track_sent(self) -> Any:
        """``CELERY_SA_TRACK_SENT``: whether publishing a task writes its row first, as
        PENDING, so tasks sent but not yet run are seen (default False; celery_sa's result
        backend only). The publisher reads it as ``sa_track_sent``."""
        return getattr(settings, "CELERY_SA_TRACK_SENT", False)

    @property
    def track_sent_delay(self) -> Any:
        """``CELERY_SA_TRACK_SENT_DELAY``: with ``CELERY_SA_TRACK_SENT``, how long PENDING
        rows may wait to be written together by a thread of the publishing process (seconds
        or a timedelta; default 0: each is written before its message leaves). The
        publisher reads it as ``sa_track_sent_delay``."""
        return getattr(settings, "CELERY_SA_TRACK_SENT_DELAY", 0)

    @property
    def decode_limit(self) -> Any:
        """``CELERY_SA_DECODE_LIMIT``: the most bytes of a stored value, or of what a
        compressed one expands to, the admin decodes (default 1 MiB); larger values are
        previewed. The text shown, and the memory decoding may take, grow in proportion."""
        return getattr(settings, "CELERY_SA_DECODE_LIMIT", 1024 * 1024)

    @property
    def export_max_rows(self) -> Any:
        """``CELERY_SA_EXPORT_MAX_ROWS``: the most rows the admin's CSV export writes
        (default 10,000; a larger selection is refused with a message)."""
        return getattr(settings, "CELERY_SA_EXPORT_MAX_ROWS", 10_000)

    @property
    def action_max_rows(self) -> Any:
        """``CELERY_SA_ACTION_MAX_ROWS``: the most tasks re-run or revoked at once (default
        100)."""
        return getattr(settings, "CELERY_SA_ACTION_MAX_ROWS", 100)

    @property
    def rerun_tasks(self) -> Any:
        """``CELERY_SA_RERUN_TASKS``: the task names (or shell-style patterns such as
        ``"billing.*"``) the admin may re-run, among those the Celery app has registered;
        ``None``: every registered task but Celery's own (``celery.*``)."""
        return getattr(settings, "CELERY_SA_RERUN_TASKS", None)

    @property
    def database_engine_options(self) -> dict[str, Any]:
        """``CELERY_DATABASE_ENGINE_OPTIONS``: Celery's ``create_engine`` options."""
        return dict(getattr(settings, "CELERY_DATABASE_ENGINE_OPTIONS", None) or {})

    @property
    def database_alias(self) -> str:
        """``CELERY_SA_DATABASE_ALIAS``: the alias registered for the result database when
        no alias in ``DATABASES`` already points at it."""
        return str(getattr(settings, "CELERY_SA_DATABASE_ALIAS", "celery_sa"))

    @property
    def read_replica(self) -> Any:
        """``CELERY_SA_READ_REPLICA``: a read replica of the result database, as an alias in
        ``DATABASES`` or a URL read as ``CELERY_RESULT_BACKEND`` is; the admin's lists and
        pages, the overview, the metrics and ``celery_sa_stats`` read from it. ``None``:
        everything reads the result database."""
        return getattr(settings, "CELERY_SA_READ_REPLICA", None)

    @property
    def celery_app(self) -> str | None:
        """``CELERY_SA_CELERY_APP``: the dotted path of the Celery app the admin's actions
        send through; ``None``: Celery's current app."""
        value = getattr(settings, "CELERY_SA_CELERY_APP", None)
        return str(value) if value else None

    @property
    def session_database_url(self) -> str | None:
        """``CELERY_SA_DATABASE_URL``: the SQLAlchemy URL of ``SessionTask``'s database
        ``"default"``."""
        value = getattr(settings, "CELERY_SA_DATABASE_URL", None)
        return str(value) if value else None

    @property
    def session_databases(self) -> dict[str, Any]:
        """``CELERY_SA_DATABASES``: more named databases for ``SessionTask`` (a URL, or a
        dict with ``URL`` or ``ALIAS`` and ``ENGINE_OPTIONS``)."""
        return dict(getattr(settings, "CELERY_SA_DATABASES", None) or {})

    @property
    def session_engine_options(self) -> dict[str, Any]:
        """``CELERY_SA_ENGINE_OPTIONS``: ``create_engine`` options for every ``SessionTask``
        engine, over celery_sa's defaults."""
        return dict(getattr(settings, "CELERY_SA_ENGINE_OPTIONS", None) or {})

    @property
    def databases(self) -> dict[str, Any]:
        """Django's ``DATABASES`` itself (celery_sa adds the alias it registers to it)."""
        databases: dict[str, Any] = settings.DATABASES
        return databases

    @property
    def database_routers(self) -> list[Any]:
        """Django's ``DATABASE_ROUTERS``."""
        return list(settings.DATABASE_ROUTERS)

    def table_name(self, key: str) -> str:
        """The configured table name for ``"task"`` or ``"group"``."""
        names = self.table_names if isinstance(self.table_names, dict) else {}
        return str(names.get(key) or DEFAULT_TABLE_NAMES[key])

    def table_schema(self, key: str) -> str | None:
        """The configured schema for ``"task"`` or ``"group"``, or ``None``."""
        schemas = self.table_schemas if isinstance(self.table_schemas, dict) else {}
        value = schemas.get(key)
        return str(value) if value else None


app_settings = AppSettings()


def configured_tables() -> ResultTables:
    """The result tables as ``CELERY_DATABASE_TABLE_NAMES``/``…_SCHEMAS`` configure them."""
    return result_tables(
        {key: app_settings.table_name(key) for key in TABLE_KEYS},
        {key: app_settings.table_schema(key) for key in TABLE_KEYS},
    )
