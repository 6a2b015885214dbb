"""The group member table (``celery_sa_group_member``) outside the backend's writes: its
expired rows, read and cleaned by the backend's ``cleanup()`` and by ``celery_sa_purge``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, exists, func, select
from sqlalchemy import delete as sql_delete

from celery_sa.sql.schema import ResultTables


def expired_members(
    connection: Connection, tables: ResultTables, cutoff: datetime, *, delete: bool
) -> int:
    """The members saved before ``cutoff`` (naive UTC) of the groups that expire with it,
    counted or deleted: their group has no row, or one saved before ``cutoff`` too (the
    same count before and after the groups are deleted). A kept group keeps its members."""
    member, group = tables.member, tables.group
    kept = (group.c.date_done >= cutoff) | group.c.date_done.is_(None)
    orphaned = (member.c.date_done < cutoff) & ~exists().where(
        group.c.taskset_id == member.c.group_id, kept
    )
    if not delete:
        return int(
            connection.execute(
                select(func.count()).select_from(member).where(orphaned)
            ).scalar_one()
        )
    return int(connection.execute(sql_delete(member).where(orphaned)).rowcount)
