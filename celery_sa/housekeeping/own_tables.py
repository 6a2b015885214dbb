"""celery_sa's own tables beside Celery's results, cleaned with them by the purge: the
counters of chords that never finished, the members of the groups deleted, and the
attempts of retried tasks (those of the tasks a batch deletes in the same transaction,
those whose task was deleted otherwise by age)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db import DatabaseError, connections, models, transaction
from sqlalchemy import Connection, Table, create_engine, inspect
from sqlalchemy.pool import NullPool

from celery_sa.conf import configured_tables
from celery_sa.db import result_database
from celery_sa.fields import NaiveZonedDateTimeField
from celery_sa.models import TaskAttempt
from celery_sa.sql.attempts import expired_attempts
from celery_sa.sql.chords import expired
from celery_sa.sql.members import expired_members

IDS_PER_DELETE = 900
"""Task ids in one ``DELETE`` of attempts: fewer parameters than any database takes in a
statement (999 on older SQLite, 2,100 on SQL Server)."""


def chord_counters(cutoff: datetime, *, delete: bool) -> int:
    """The counters of chords begun before ``cutoff`` that never finished (their header
    task lost for good), counted or deleted; 0 where celery_sa's backend never ran."""
    tables = configured_tables()
    naive_utc = cutoff.astimezone(UTC).replace(tzinfo=None)
    return _if_exists(tables.chord, lambda c: expired(c, tables, naive_utc, delete=delete))


def expiring_members(cutoff: datetime, *, delete: bool) -> int:
    """The group members saved before ``cutoff`` whose group expires with it (deleted, or
    to be), counted or deleted; 0 where the database has no member table."""
    tables = configured_tables()
    naive_utc = cutoff.astimezone(UTC).replace(tzinfo=None)
    return _if_exists(tables.member, lambda c: expired_members(c, tables, naive_utc, delete=delete))


def orphaned_attempts(cutoff: datetime, *, delete: bool) -> int:
    """The attempts done before ``cutoff`` whose task has no row any more (deleted by
    Celery's own cleanup or ``forget()``), counted or deleted; 0 where the database has no
    attempt table."""
    tables = configured_tables()
    stored = stored_time(cutoff)
    return _if_exists(tables.attempt, lambda c: expired_attempts(c, tables, stored, delete=delete))


def keeps_attempts(using: str) -> bool:
    """Whether the database ``using`` has the attempt table (tables made before it have
    none until ``celery_sa_tables upgrade``)."""
    # A lookup of the primary key that finds nothing, or fails without the table.
    probe = TaskAttempt.objects.using(using).filter(task_id="", attempt=-1)
    try:
        # A transaction of its own: on PostgreSQL a failed statement ends the one it is in.
        with transaction.atomic(using=using):
            probe.exists()
    except DatabaseError:
        return False
    return True


def attempts_of(tasks: models.QuerySet[Any]) -> int:
    """How many attempts the task rows ``tasks`` have."""
    attempts = TaskAttempt.objects.using(tasks.db)
    return attempts.filter(task_id__in=tasks.values("task_id")).count()


def delete_attempts_of(tasks: models.QuerySet[Any]) -> int:
    """Delete the attempts of the task rows ``tasks`` (a batch about to be deleted, in the
    caller's transaction): by their task ids, each a lookup of the attempt table's primary
    key, where a subquery would scan the table on some databases."""
    ids = [task_id for task_id in tasks.values_list("task_id", flat=True) if task_id]
    attempts = TaskAttempt.objects.using(tasks.db)
    return sum(
        attempts.filter(task_id__in=ids[start : start + IDS_PER_DELETE]).delete()[0]
        for start in range(0, len(ids), IDS_PER_DELETE)
    )


def stored_time(moment: datetime) -> datetime:
    """``moment`` as the attempt table stores its times: naive wall time in the zone the
    task table's ``date_done`` is written in on the result database."""
    field = TaskAttempt._meta.get_field("date_done")
    assert isinstance(field, NaiveZonedDateTimeField)
    zone = field.tzinfo(connections[TaskAttempt.objects.db])
    return moment.astimezone(zone).replace(tzinfo=None)


def _if_exists(table: Table, work: Callable[[Connection], int]) -> int:
    """``work`` in a transaction on the result database; 0 where ``table`` does not exist."""
    engine = create_engine(result_database().url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            if not inspect(connection).has_table(table.name, schema=table.schema):
                return 0
            return work(connection)
    finally:
        engine.dispose()
