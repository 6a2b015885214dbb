"""Unmanaged models over the tables Celery's database result backend writes.

Django never creates or alters these tables (``managed = False``); ``manage.py
celery_sa_tables`` does. The table names and schemas follow ``CELERY_DATABASE_TABLE_NAMES``
and ``CELERY_DATABASE_TABLE_SCHEMAS``, applied by :func:`configure_tables`.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any, ClassVar

from django.db import DatabaseError, models, transaction
from django.utils.translation import gettext_lazy as _

from celery_sa.conf import app_settings
from celery_sa.fields import NaiveZonedDateTimeField
from celery_sa.sql.vendors import Vendor


def _celery_zone() -> str:
    return app_settings.timezone


# A table without date_started (made by Celery, not yet upgraded) is checked again this
# often, so `celery_sa_tables upgrade` shows start times without a restart.
RECHECK_SECONDS = 60.0
_checked: dict[tuple[str, str, str], tuple[float, bool]] = {}
_checked_lock = threading.Lock()


def has_date_started(using: str) -> bool:
    """Whether the live task table has celery_sa's ``date_started`` column."""
    table = TaskResult._meta.db_table
    key = (using, table, str(TaskResult._meta.get_field("date_started").column))
    now = time.monotonic()
    seen = _checked.get(key)
    if seen is not None and (seen[1] or now - seen[0] < RECHECK_SECONDS):
        return seen[1]
    probe: models.QuerySet[TaskResult, Any] = (
        models.QuerySet(TaskResult, using=using).filter(pk=-1).values_list("date_started")
    )
    try:
        # A savepoint: on PostgreSQL a failed statement would end the caller's transaction.
        with transaction.atomic(using=using):
            list(probe)
        present = True
    except DatabaseError:
        present = False
    with _checked_lock:
        _checked[key] = (now, present)
    return present


def forget_live_columns() -> None:
    """Check the live table again on next use (its columns changed, settings changed)."""
    with _checked_lock:
        _checked.clear()


class TaskResultManager(models.Manager["TaskResult"]):
    """Reads ``date_started`` only where the table has it: Celery's own tables work
    unchanged until ``celery_sa_tables upgrade`` adds it."""

    def get_queryset(self) -> models.QuerySet[TaskResult]:
        queryset = super().get_queryset()
        if not has_date_started(queryset.db):
            return queryset.defer("date_started")
        return queryset


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
    # Written by celery_sa's result backend under task_track_started; NULL otherwise.
    date_started = NaiveZonedDateTimeField(_("date started"), null=True, zone=_celery_zone)

    objects = TaskResultManager()

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

    @property
    def started(self) -> datetime | None:
        """``date_started``, or None where it is not recorded (or the table lacks it)."""
        if "date_started" in self.get_deferred_fields():
            return None
        started: datetime | None = self.date_started
        return started


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


def configure_tables(vendor: Vendor) -> None:
    """Point the models at the configured table names and schemas, a schema-qualified
    name quoted as ``vendor`` (the result database's) quotes it."""
    for model in (TaskResult, GroupResult):
        name = app_settings.table_name(model.table_key)
        schema = app_settings.table_schema(model.table_key)
        model._meta.db_table = vendor.quote_table(schema, name) if schema else name
        for model_field in model._meta.concrete_fields:
            # Field.cached_col captured the old table name for column references.
            model_field.__dict__.pop("cached_col", None)


class Overview(TaskResult):
    """The admin's overview of the task table: a page, not rows of its own. Seeing it takes
    the view permission on task results (it has no permissions of its own)."""

    class Meta:
        proxy = True
        verbose_name = _("overview")
        verbose_name_plural = _("overview")
        default_permissions = ()
