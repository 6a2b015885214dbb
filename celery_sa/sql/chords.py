"""The chord tables outside the chord protocol: read and cleaned by the backend's
``cleanup()`` and by ``celery_sa_purge``; brought up to date by the backend where an older
celery_sa made the chord table without its newer columns."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, func, inspect, select
from sqlalchemy import delete as sql_delete

from celery_sa.sql import vendors
from celery_sa.sql.ddl import AlterTable
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


def missing_chord_columns(connection: Connection, tables: ResultTables) -> list[str]:
    """The names of the chord table's columns the live table lacks (those celery_sa added
    after 0.2), in the table's order. The table must exist
    (:class:`sqlalchemy.exc.NoSuchTableError` otherwise)."""
    chord = tables.chord
    live = {c["name"] for c in inspect(connection).get_columns(chord.name, schema=chord.schema)}
    return [column.name for column in chord.columns if column.name not in live]


def add_chord_columns(connection: Connection, tables: ResultTables, names: Iterable[str]) -> None:
    """Add the chord table's columns ``names`` (all nullable) to the live table, with the
    ``ALTER TABLE`` statements ``celery_sa_tables upgrade`` runs on this database, in the
    caller's transaction (MySQL/MariaDB commit each ``ALTER`` themselves)."""
    chord = tables.chord
    change = AlterTable(chord, add=[chord.c[name] for name in names])
    rules = vendors.get(connection.dialect.name).ddl
    for statement in rules.alter_statements(change):
        rules.run_ddl(connection, statement)
