"""What the result tables are now, as the upgrade plans from it: read from a live database
(:func:`celery_sa.sql.live.read_state`), or known from the Celery version that created them
(:mod:`celery_sa.tables.origins`), where the figures a live database would tell (rows, the
highest id, a sequence's position) are unknown and the SQL reads them itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Sequence, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine


@dataclass(frozen=True)
class ColumnState:
    type: TypeEngine[Any]
    nullable: bool = True
    auto_increment: bool = False
    """MySQL's AUTO_INCREMENT (kept when the column is widened)."""
    identity: bool = False
    """SQL Server's IDENTITY (SQLAlchemy before 1.4 made Celery's ids so)."""


@dataclass(frozen=True)
class IndexState:
    name: str | None
    columns: tuple[str, ...]
    unique: bool = False
    valid: bool = True
    """False: left unusable by an interrupted build (PostgreSQL), to drop and build again."""


@dataclass(frozen=True)
class SequenceState:
    next_value: int | None = None
    """What it hands out next; None where that is not known."""
    bigint: bool = True


@dataclass(frozen=True)
class TableState:
    columns: dict[str, ColumnState]
    indexes: tuple[IndexState, ...] = ()
    rows: int | None = None
    max_id: int | None = None
    """The highest id; None where it is not known (then the SQL reads it)."""


@dataclass(frozen=True)
class DatabaseState:
    """The result tables and sequences that exist, by ``Table.fullname``/(schema, name)."""

    dialect: Dialect
    tables: dict[str, TableState] = field(default_factory=dict)
    sequences: dict[tuple[str | None, str], SequenceState] = field(default_factory=dict)

    def table(self, table: Table) -> TableState | None:
        return self.tables.get(table.fullname)

    def sequence(self, sequence: Sequence) -> SequenceState | None:
        return self.sequences.get((sequence.schema, sequence.name))
