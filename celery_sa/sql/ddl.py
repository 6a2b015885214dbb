"""DDL that SQLAlchemy Core has no construct for, compiled by each dialect's own compiler.

Column specifications, types and identifiers come from the dialect's DDL compiler and
identifier preparer; only the ``ALTER`` keywords are spelled here. The standard SQL form is
compiled here; a database that spells it otherwise compiles it in its module of
:mod:`celery_sa.sql.vendors`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, Sequence, Table
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.ddl import ExecutableDDLElement


class AlterTable(ExecutableDDLElement):
    """One ``ALTER TABLE`` adding columns, widening columns and (MySQL) adding indexes.

    The upgrade plans one per table; each database's ``alter_statements`` runs it as it is
    or splits it. ``keep_auto_increment``: the live id auto-increments (MySQL restates it
    when it widens the column); ``identity``: the live id is an IDENTITY column (SQL Server
    rebuilds it); ``mysql_online``: the ``ALGORITHM=…, LOCK=…`` clause.
    """

    def __init__(
        self,
        table: Table,
        *,
        add: list[Column[Any]] | None = None,
        widen: list[Column[Any]] | None = None,
        indexes: list[Index] | None = None,
        keep_auto_increment: bool = False,
        identity: bool = False,
        mysql_online: str = "",
    ) -> None:
        self.table = table
        self.add = add or []
        self.widen = widen or []
        self.indexes = indexes or []
        self.keep_auto_increment = keep_auto_increment
        self.identity = identity
        self.mysql_online = mysql_online


class RestartSequence(ExecutableDDLElement):
    """``ALTER SEQUENCE … RESTART WITH n``: move a sequence past the ids already used."""

    def __init__(self, sequence: Sequence, start: int) -> None:
        self.sequence = sequence
        self.start = start


class SequenceAfterIds(ExecutableDDLElement):
    """Move ``sequence`` past the highest id of ``table``, read by the SQL itself: an
    offline script does not know it (a live upgrade writes the number,
    :class:`RestartSequence`)."""

    def __init__(self, sequence: Sequence, table: Table) -> None:
        self.sequence = sequence
        self.table = table


def _column_type(column: Column[Any], compiler: Any) -> str:
    return str(column.type.compile(dialect=compiler.dialect))


@compiles(AlterTable)
def _alter_table(element: AlterTable, compiler: Any, **kw: Any) -> str:
    # PostgreSQL (and the SQL standard): several actions in one statement, one rewrite.
    clauses = [f"ADD COLUMN {compiler.get_column_specification(c)}" for c in element.add]
    clauses += [
        f"ALTER COLUMN {compiler.preparer.format_column(c)} TYPE {_column_type(c, compiler)}"
        for c in element.widen
    ]
    return f"ALTER TABLE {compiler.preparer.format_table(element.table)} {', '.join(clauses)}"


@compiles(RestartSequence)
def _restart_sequence(element: RestartSequence, compiler: Any, **kw: Any) -> str:
    name = compiler.preparer.format_sequence(element.sequence)
    return f"ALTER SEQUENCE {name} RESTART WITH {int(element.start)}"


@compiles(SequenceAfterIds)
def _sequence_after_ids(element: SequenceAfterIds, compiler: Any, **kw: Any) -> str:
    # PostgreSQL's setval() takes any expression: the next nextval() returns the value.
    preparer = compiler.preparer
    name = preparer.format_sequence(element.sequence).replace("'", "''")
    highest = (
        f"SELECT COALESCE(MAX({preparer.quote('id')}), 0) + 1 "
        f"FROM {preparer.format_table(element.table)}"
    )
    return f"SELECT setval('{name}', ({highest}), false)"
