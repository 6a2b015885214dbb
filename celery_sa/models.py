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
from celery_sa.fields import NaiveUTCDateTimeField, NaiveZonedDateTimeField
from celery_sa.sql.schema import ATTEMPT_TABLE, CHORD_TABLES, MEMBER_TABLE
from celery_sa.sql.vendors import Vendor


def _celery_zone() -> str:
    return app_settings.timezone


# A table without celery_sa's columns (made by Celery, or by celery_sa before 0.4: no
# date_sent) is checked again this often, so `celery_sa_tables upgrade` shows them without a
# restart.
RECHECK_SECONDS = 60.0
OWN_COLUMNS = ("date_started", "date_sent")
"""celery_sa's columns of the task table, which Celery's own tables lack."""
_checked: dict[tuple[str, str, str], tuple[float, bool]] = {}
_checked_lock = threading.Lock()


def has_column(using: str, name: str) -> bool:
    """Whether the live task table has celery_sa's column ``name`` (OWN_COLUMNS)."""
    table = TaskResult._meta.db_table
    key = (using, table, name)
    now = time.monotonic()
    seen = _checked.get(key)
    if seen is not None and (seen[1] or now - seen[0] < RECHECK_SECONDS):
        return seen[1]
    probe: models.QuerySet[TaskResult, Any] = (
        models.QuerySet(TaskResult, using=using).filter(pk=-1).values_list(name)
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


def missing_columns(using: str) -> list[str]:
    """celery_sa's columns the live task table lacks."""
    return [name for name in OWN_COLUMNS if not has_column(using, name)]


def forget_live_columns() -> None:
    """Check the live table again on next use (its columns changed, settings changed)."""
    with _checked_lock:
        _checked.clear()


class TaskResultManager(models.Manager["TaskResult"]):
    """Reads celery_sa's columns only where the table has them: Celery's own tables work
    unchanged until ``celery_sa_tables upgrade`` adds them."""

    def get_queryset(self) -> models.QuerySet[TaskResult]:
        queryset = super().get_queryset()
        missing = missing_columns(queryset.db)
        return queryset.defer(*missing) if missing else queryset


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
    # Written by celery_sa's result backend (the start of the last execution, the first
    # send); NULL in rows of Celery's backend and of publishers without celery_sa.
    date_started = NaiveZonedDateTimeField(_("date started"), null=True, zone=_celery_zone)
    date_sent = NaiveZonedDateTimeField(_("date sent"), null=True, zone=_celery_zone)

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
        return self._own("date_started")

    @property
    def sent(self) -> datetime | None:
        """``date_sent``, or None where it is not recorded (or the table lacks it)."""
        return self._own("date_sent")

    @property
    def queue_wait(self) -> float | None:
        """Seconds from the first send to the start of the first execution: only for a task
        that ran once (a retried task's last start is not its first)."""
        sent, started = self.sent, self.started
        if sent is None or started is None or self.retries:
            return None
        return (started - sent).total_seconds()

    def _own(self, name: str) -> datetime | None:
        if name in self.get_deferred_fields():
            return None
        value: datetime | None = getattr(self, name)
        return value


class TaskAttempt(models.Model):
    """An execution of a task that ended in a retry (``celery_sa_attempt``, written by
    celery_sa's backend): the task's timeline with its own row."""

    pk = models.CompositePrimaryKey("task_id", "attempt")
    task_id = models.CharField(_("task id"), max_length=155)
    attempt = models.IntegerField(_("attempt"))
    name = models.CharField(_("task name"), max_length=155, null=True)
    status = models.CharField(_("status"), max_length=50)
    date_started = NaiveZonedDateTimeField(_("date started"), null=True, zone=_celery_zone)
    date_done = NaiveZonedDateTimeField(_("date done"), zone=_celery_zone)
    exception = models.CharField(_("exception"), max_length=155, null=True)
    message = models.TextField(_("message"), null=True)
    traceback = models.TextField(_("traceback"), null=True)

    class Meta:
        managed = False
        db_table = ATTEMPT_TABLE
        verbose_name = _("task attempt")
        verbose_name_plural = _("task attempts")
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.task_id} #{self.attempt} ({self.status})"


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


class Chord(models.Model):
    """A chord celery_sa's backend is counting (``celery_sa_chord``): its callback has not
    run yet (``date_fired`` is empty), or was sent a moment ago. Chords run by Celery's own
    backend (``celery.chord_unlock``) have no row."""

    group_id = models.CharField(_("group id"), max_length=155, primary_key=True)
    chord_size = models.IntegerField(_("size"), null=True)
    # The chord tables' times are naive UTC, whatever Celery's zone.
    date_created = NaiveUTCDateTimeField(_("started"))
    date_fired = NaiveUTCDateTimeField(_("callback claimed"), null=True)
    claimed_by = models.CharField(_("claimed by"), max_length=155, null=True)
    callback = models.BinaryField(_("callback"), null=True)

    class Meta:
        managed = False
        db_table = CHORD_TABLES["chord"]
        verbose_name = _("waiting chord")
        verbose_name_plural = _("waiting chords")
        default_permissions = ("view",)
        permissions = (("fail_chord", _("Can fail a waiting chord")),)

    def __str__(self) -> str:
        return self.group_id


class ChordPart(models.Model):
    """A chord's header task that has returned (``celery_sa_chord_part``)."""

    pk = models.CompositePrimaryKey("group_id", "task_id")
    group_id = models.CharField(_("group id"), max_length=155)
    task_id = models.CharField(_("task id"), max_length=155)
    group_index = models.IntegerField(_("index"), null=True)
    date_done = NaiveUTCDateTimeField(_("date done"))

    class Meta:
        managed = False
        db_table = CHORD_TABLES["part"]
        verbose_name = _("chord part")
        verbose_name_plural = _("chord parts")
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.group_id} {self.task_id}"


class GroupMember(models.Model):
    """A task of a group celery_sa's backend saved (``celery_sa_group_member``), in the
    group's order. Groups saved by Celery's own backend have none."""

    pk = models.CompositePrimaryKey("group_id", "task_id")
    group_id = models.CharField(_("group id"), max_length=155)
    task_id = models.CharField(_("task id"), max_length=155)
    group_index = models.IntegerField(_("index"))
    date_done = NaiveUTCDateTimeField(_("date done"))

    class Meta:
        managed = False
        db_table = MEMBER_TABLE
        verbose_name = _("group member")
        verbose_name_plural = _("group members")
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.group_id} {self.task_id}"


def configure_tables(vendor: Vendor) -> None:
    """Point the models at the configured table names and schemas, a schema-qualified
    name quoted as ``vendor`` (the result database's) quotes it."""
    for model in (TaskResult, GroupResult):
        name = app_settings.table_name(model.table_key)
        schema = app_settings.table_schema(model.table_key)
        model._meta.db_table = vendor.quote_table(schema, name) if schema else name
        _forget_columns(model)
    # celery_sa's own tables, in the task table's schema.
    schema = app_settings.table_schema("task")
    own: tuple[tuple[type[models.Model], str], ...] = (
        (TaskAttempt, ATTEMPT_TABLE),
        (Chord, CHORD_TABLES["chord"]),
        (ChordPart, CHORD_TABLES["part"]),
        (GroupMember, MEMBER_TABLE),
    )
    for own_model, own_name in own:
        own_model._meta.db_table = vendor.quote_table(schema, own_name) if schema else own_name
        _forget_columns(own_model)


def _forget_columns(model: type[models.Model]) -> None:
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
