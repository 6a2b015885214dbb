"""The chord tables read and cleaned outside the chord protocol: by the backend's
``cleanup()`` and by ``celery_sa_purge``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select
from sqlalchemy import delete as sql_delete

from celery_sa.sql.schema import ResultTables


def expired(connection: Connection, tables: ResultTables, cutoff: datetime, *, delete: bool) -> int:
    """The chords started before ``cutoff`` (naive UTC) that never finished, counted or
    deleted with their parts (and parts of finished chords, from a late redelivery)."""
    chord, part = tables.chord, tables.part
    old_chords = chord.c.date_created < cutoff
    if not delete:
        return int(
            connection.execute(
                select(func.count()).select_from(chord).where(old_chords)
            ).scalar_one()
        )
    connection.execute(sql_delete(part).where(part.c.date_done < cutoff))
    return int(connection.execute(sql_delete(chord).where(old_chords)).rowcount)
