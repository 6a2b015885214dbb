"""Unmanaged models over the tables Celery's database result backend writes.

Django never creates or alters these tables (``managed = False``); ``manage.py
celery_sa_tables`` does. The table names and schemas follow ``CELERY_DATABASE_TABLE_NAMES``
and ``CELERY_DATABASE_TABLE_SCHEMAS``, applied by :func:`configure_tables`.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _

from celery_sa.conf import app_settings
from celery_sa.dialects import Database
from celery_sa.fields import NaiveZonedDateTimeField


def _celery_zone() -> str:
    return app_settings.timezone


class TaskResult(models.Model):
    """One row of Celery's task table (``celery_taskmeta`` unless renamed)."""

    table_key: ClassVar[str] = "task"
    """Its key in ``CELERY_DATABASE_TABLE_NAMES``/``…_SCHEMAS``."""

    id = models.BigAutoField(primary_key=True)
    task_id = models.CharField(_("task id"), max_length=155, unique=True, null=True)
    status = models.CharField(_("status"), max_length=50, null=True)
    result = models.BinaryField(_("result"), null=True)
    date_done = NaiveZonedDateTimeField(_("date done"), null=True, zone=_celery_zone)
    traceback = models.TextField(_("traceback"), null=True)
    children = models.BinaryField(_("children"), null=True)
    name = models.CharField(_("task name"), max_length=155, null=True)
    args = models.BinaryField(_("args"), null=True)
    kwargs = models.BinaryField(_("kwargs"), null=True)
    worker = models.CharField(_("worker"), max_length=155, null=True)
    retries = models.IntegerField(_("retries"), null=True)
    queue = models.CharField(_("queue"), max_length=155, null=True)
    stamps = models.BinaryField(_("stamps"), null=True)

    class Meta:
        managed = False
        db_table = "celery_taskmeta"
        verbose_name = _("task result")
        verbose_name_plural = _("task results")
        permissions = [
            ("rerun_taskresult", _("Can re-run task results' tasks")),
            ("revoke_taskresult", _("Can revoke unfinished tasks")),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} ({self.status})"


class GroupResult(models.Model):
    """One row of Celery's group table (``celery_tasksetmeta`` unless renamed)."""

    table_key: ClassVar[str] = "group"

    id = models.BigAutoField(primary_key=True)
    taskset_id = models.CharField(_("group id"), max_length=155, unique=True, null=True)
    result = models.BinaryField(_("result"), null=True)
    # Celery fills the group's date_done from a UTC column default, whatever its zone.
    date_done = NaiveZonedDateTimeField(_("date done"), null=True, zone="UTC")

    class Meta:
        managed = False
        db_table = "celery_tasksetmeta"
        verbose_name = _("group result")
        verbose_name_plural = _("group results")

    def __str__(self) -> str:
        return str(self.taskset_id)


def configure_tables(database: Database) -> None:
    """Point the models at the configured table names and schemas, a schema-qualified
    name quoted as ``database`` (the result database) quotes it."""
    for model in (TaskResult, GroupResult):
        name = app_settings.table_name(model.table_key)
        schema = app_settings.table_schema(model.table_key)
        model._meta.db_table = (
            f"{database.quote(schema)}.{database.quote(name)}" if schema else name
        )
        for model_field in model._meta.concrete_fields:
            # Field.cached_col captured the old table name for column references.
            model_field.__dict__.pop("cached_col", None)
