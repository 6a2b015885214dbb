"""PostgreSQL on the Django side: psycopg 3 (or psycopg2) for Celery and for Django."""

from __future__ import annotations

import weakref
import zoneinfo
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from celery_sa.db.adapters.base import Driver, Operations, Replication, UrlMapping

PSYCOPG = Driver("psycopg", "psycopg[binary]")
PSYCOPG2 = Driver("psycopg2", "psycopg2-binary")

_default_zones: weakref.WeakKeyDictionary[Any, zoneinfo.ZoneInfo] = weakref.WeakKeyDictionary()


class PostgreSQLUrlMapping(UrlMapping):
    vendor_name = "postgresql"
    django_engine = "django.db.backends.postgresql"
    django_drivers = (PSYCOPG, PSYCOPG2)
    celery_drivers = {("postgresql", "psycopg"): PSYCOPG, ("postgresql", "psycopg2"): PSYCOPG2}
    default_port = "5432"

    def default_drivername(self) -> str:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "postgresql+psycopg2"
        return "postgresql+psycopg"

    def to_django(self, config: dict[str, Any], query: dict[str, str]) -> None:
        if "host" in query:
            config["HOST"] = query.pop("host")
        if "port" in query:
            config["PORT"] = query.pop("port")
        super().to_django(config, query)

    def from_django(
        self, options: dict[str, Any], host: str | None
    ) -> tuple[dict[str, Any], str | None]:
        if host and host.startswith("/"):  # a socket directory
            return {"host": host, **options}, None
        return options, host


class PostgreSQLOperations(Operations):
    def replication(self, connection: BaseDatabaseWrapper) -> Replication | None:
        # Replayed all it has received: no lag, however long ago the primary last wrote
        # (now() - the last replayed commit would grow while nothing happens).
        sql = (
            "SELECT pg_is_in_recovery(), "
            "EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') "
            "AND NOT pg_is_wal_replay_paused(), "
            "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
            "ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql)
            in_recovery, streaming, lag = cursor.fetchone()
        if not in_recovery:
            return None
        return Replication(bool(streaming), None if lag is None else max(0.0, float(lag)))

    def stored_zone(self, connection: BaseDatabaseWrapper, zone: str) -> zoneinfo.ZoneInfo:
        # The driver converts the aware value into the writing session's TimeZone, whatever
        # Celery's zone: the database's default, which Django's own (UTC) sessions can read
        # as reset_val. Asked once per DB-API connection.
        connection.ensure_connection()
        raw = connection.connection
        found = _default_zones.get(raw)
        if found is None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reset_val FROM pg_settings WHERE name = 'TimeZone'")
                name = cursor.fetchone()[0]
            try:
                found = zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                found = zoneinfo.ZoneInfo("UTC")
            _default_zones[raw] = found
        return found
