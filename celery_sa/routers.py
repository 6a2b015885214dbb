"""Route the result models to the result database and keep migrations off it."""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model

from celery_sa.conf import app_settings
from celery_sa.db import result_alias
from celery_sa.db.replica import REPLICA_ALIAS, reading_alias
from celery_sa.errors import BackendURLError

APP_LABEL = "celery_sa"


class ResultDatabaseRouter:
    """Add ``"celery_sa.routers.ResultDatabaseRouter"`` to ``DATABASE_ROUTERS``.

    Reads and writes of celery_sa's models go to the result database (reads inside
    :func:`celery_sa.db.replica.replica_reads` to the read replica); no migration of any
    app runs against the result database unless it is the default one, nor against the
    replica.
    """

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        # Inside replica_reads(): the read replica, when one is set and answers.
        replica = reading_alias()
        if replica is not None and model._meta.app_label == APP_LABEL:
            return replica
        return self._route(model)

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return self._route(model)

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        try:
            alias = result_alias()
        except BackendURLError:
            return None
        if db == alias and alias != DEFAULT_DB_ALIAS:
            return False
        if db == REPLICA_ALIAS or db == app_settings.read_replica:
            return False  # a replica follows its primary
        return None

    def _route(self, model: type[Model]) -> str | None:
        if model._meta.app_label != APP_LABEL:
            return None
        return result_alias()
