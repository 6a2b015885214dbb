"""App configuration: resolve the result database and keep it in step with settings."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.utils.translation import gettext_lazy as _

from celery_sa.db import reset, result_database
from celery_sa.errors import BackendURLError
from celery_sa.sessions import dispose_engines
from celery_sa.sql import vendors
from celery_sa.tables.compat import widen_celery_ids

TABLE_SETTINGS = {
    "CELERY_RESULT_BACKEND",
    "CELERY_DATABASE_TABLE_NAMES",
    "CELERY_DATABASE_TABLE_SCHEMAS",
}
ALIAS_SETTINGS = {"CELERY_SA_DATABASE_ALIAS", "DATABASES"}
ENGINE_SETTINGS = {
    "CELERY_SA_DATABASE_URL",
    "CELERY_SA_DATABASES",
    "CELERY_SA_ENGINE_OPTIONS",
    "DATABASES",
}


class CelerySAConfig(AppConfig):
    name = "celery_sa"
    verbose_name = _("Celery results")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery_sa import (
            checks,  # noqa: F401  (registers the system checks)
            lifecycle,
        )

        lifecycle.connect()  # tasks this project sends carry their sent time

        widen_celery_ids()
        configure()
        setting_changed.connect(_on_setting_changed, dispatch_uid="celery_sa.configure")


def configure() -> None:
    """Resolve the result database alias and point the models at the configured tables.

    A misconfiguration is left for the system checks to report with a hint.
    """
    from celery_sa.models import configure_tables

    try:
        database = result_database()
    except BackendURLError:
        return
    configure_tables(vendors.get(database.url.get_backend_name()))


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ENGINE_SETTINGS:
        dispose_engines()
    if setting in ALIAS_SETTINGS:
        reset()
    if setting in TABLE_SETTINGS | ALIAS_SETTINGS:
        from celery_sa.models import forget_live_columns

        configure()
        forget_live_columns()
