"""The attempt table outside the backend's writes: its expired rows, read and cleaned by the
backend's ``cleanup()`` and by ``celery_sa_purge``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, exists, func, select
from sqlalchemy import delete as sql_delete

from celery_sa.sql.schema import ResultTables


def expired_attempts(
    connection: Connection, tables: ResultTables, cutoff: datetime, *, delete: bool
) -> int:
    """The attempts done before ``cutoff`` whose task has no row any more, counted or
    deleted: run after the task rows done before ``cutoff`` are deleted, it takes their
    attempts (all done before their task) and leaves those of a task still kept.

    ``cutoff`` is compared with ``date_done`` as the task table's is: naive wall time in the
    zone it is stored in, or aware, as the backend writes it (the driver converts both
    alike)."""
    attempt, task = tables.attempt, tables.task
    # NOT EXISTS, not NOT IN: a task row without a task_id (NULL) must not hide every one.
    orphaned = (attempt.c.date_done < cutoff) & ~exists().where(task.c.task_id == attempt.c.task_id)
    if not delete:
        return int(
            connection.execute(
                select(func.count()).select_from(attempt).where(orphaned)
            ).scalar_one()
        )
    return int(connection.execute(sql_delete(attempt).where(orphaned)).rowcount)
