"""The result tables as each series of Celery versions creates them: the starting points of
the offline upgrade scripts (``celery_sa_tables sql --from VERSION``).

Celery's models (``celery.backends.database.models``) changed four times:

- 4.0 to 4.3: the core columns only;
- 4.4 to 5.5: the extended result columns (name, args, kwargs, worker, retries, queue);
- 5.6: an index on each ``date_done``, BIGINT ids on SQL Server;
- 5.7: ``children`` and ``stamps``.

What the database made of them also depends on the SQLAlchemy of the day: before 1.4,
MariaDB got AUTO_INCREMENT ids and no sequences, SQL Server IDENTITY ids and no sequences;
from 1.4 on, both get the sequences Celery names. Each table is as ``create_all()`` makes it
(``tests/tables/legacy/`` holds real dumps of them, the tests compare).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _
from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from celery_sa.sql import vendors
from celery_sa.sql.schema import ResultTables, id_sequence
from celery_sa.sql.state import (
    ColumnState,
    DatabaseState,
    IndexState,
    SequenceState,
    TableState,
)

Version = tuple[int, int]


@dataclass(frozen=True)
class Origin:
    """One series of Celery versions whose models are the same."""

    first: Version
    last: Version | None
    extended: bool = True
    date_done_index: bool = False
    bigint_mssql_id: bool = False
    children: bool = False

    @property
    def name(self) -> str:
        """``"4.4-5.5"`` (with an en dash), ``"5.7+"``."""
        first = "{}.{}".format(*self.first)
        if self.last is None:
            return f"{first}+"
        return first if self.last == self.first else "{}–{}.{}".format(first, *self.last)

    def covers(self, version: Version) -> bool:
        return self.first <= version and (self.last is None or version <= self.last)


ORIGINS = (
    Origin((4, 0), (4, 3), extended=False),
    Origin((4, 4), (5, 5)),
    Origin((5, 6), (5, 6), date_done_index=True, bigint_mssql_id=True),
    Origin((5, 7), None, date_done_index=True, bigint_mssql_id=True, children=True),
)


@dataclass(frozen=True)
class StartingPoint:
    """The tables a Celery version created, with the SQLAlchemy of that time."""

    origin: Origin
    old_sqlalchemy: bool
    """Made by SQLAlchemy before 1.4."""

    def describe(self) -> str:
        sqlalchemy = (
            _("SQLAlchemy 1.3 or earlier") if self.old_sqlalchemy else _("SQLAlchemy 1.4 or later")
        )
        # Translators: versions is a range of Celery versions such as "4.4-5.5".
        return _("the tables Celery %(versions)s creates with %(sqlalchemy)s") % {
            "versions": self.origin.name,
            "sqlalchemy": sqlalchemy,
        }


def starting_point(version: str, sqlalchemy: str | None = None) -> StartingPoint:
    """The starting point of Celery ``version`` (``"5.2"``, ``"5.2.7"``); ``sqlalchemy``:
    ``"1.3"`` or ``"1.4"`` (and later), by default 1.3 for Celery 4 and 1.4 for Celery 5."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?", version.strip())
    parsed = (int(match[1]), int(match[2])) if match else None
    origin = next((o for o in ORIGINS if parsed and o.covers(parsed)), None)
    if parsed is None or origin is None:
        raise ValueError(
            # Translators: version is what the user typed; known lists version ranges.
            _("%(version)r is not a Celery version celery_sa knows (give one of %(known)s).")
            % {"version": version, "known": ", ".join(o.name for o in ORIGINS)}
        )
    old = parsed < (5, 0) if sqlalchemy is None else sqlalchemy == "1.3"
    return StartingPoint(origin=origin, old_sqlalchemy=old)


def origin_state(point: StartingPoint, dialect: Dialect, tables: ResultTables) -> DatabaseState:
    """The tables ``point`` created, as they would be read from a database of ``dialect``
    (named as ``tables`` are configured)."""
    state = DatabaseState(dialect)
    vendor = vendors.get(dialect.name)
    sequences = dialect.supports_sequences and (
        vendor.old_sqlalchemy_sequences or not point.old_sqlalchemy
    )
    identifier = ColumnState(
        # Celery 5.6's DialectSpecificInteger: BIGINT on SQL Server only.
        (
            Integer().with_variant(BigInteger(), "mssql")
            if point.origin.bigint_mssql_id
            else Integer()
        ),
        nullable=False,
        auto_increment=vendor.auto_increment_ids and not sequences,
        identity=vendor.old_sqlalchemy_identity and point.old_sqlalchemy,
    )
    for key, table in tables.by_key().items():
        columns = {"id": identifier} | {
            name: ColumnState(type_) for name, type_ in _value_columns(point.origin, key).items()
        }
        unique = "task_id" if key == "task" else "taskset_id"
        indexes = [IndexState(None, (unique,), unique=True)]
        if point.origin.date_done_index:
            indexes.append(IndexState(f"ix_{table.name}_date_done", ("date_done",)))
        state.tables[table.fullname] = TableState(columns=columns, indexes=tuple(indexes))
        sequence = id_sequence(table)
        if sequences and sequence is not None:
            state.sequences[(sequence.schema, sequence.name)] = SequenceState()
    return state


def _value_columns(origin: Origin, key: str) -> dict[str, TypeEngine[Any]]:
    """The columns after ``id``, in Celery's order, with Celery's types (its PickleType
    is a LargeBinary)."""
    if key == "group":
        return {"taskset_id": String(155), "result": LargeBinary(), "date_done": DateTime()}
    columns: dict[str, TypeEngine[Any]] = {
        "task_id": String(155),
        "status": String(50),
        "result": LargeBinary(),
        "date_done": DateTime(),
        "traceback": Text(),
    }
    if origin.children:
        columns["children"] = LargeBinary()
    if origin.extended:
        columns |= {
            "name": String(155),
            "args": LargeBinary(),
            "kwargs": LargeBinary(),
            "worker": String(155),
            "retries": Integer(),
            "queue": String(155),
        }
    if origin.children:
        columns["stamps"] = LargeBinary()
    return columns


def assumptions(state: DatabaseState, tables: ResultTables) -> list[str]:
    """What a script from ``state`` takes for granted about each table's id, in words."""
    lines = []
    vendor = vendors.get(state.dialect.name)
    for table in tables.by_key().values():
        found = state.table(table)
        if found is None:
            continue
        identifier = found.columns["id"]
        kind = vendor.type_name(identifier.type)
        if identifier.auto_increment:
            kind += " AUTO_INCREMENT"
        if identifier.identity:
            kind += " IDENTITY"
        sequence = id_sequence(table)
        if not state.dialect.supports_sequences or sequence is None:
            source = ""
        elif state.sequence(sequence) is None:
            source = _("no sequence %(sequence)s") % {"sequence": sequence.name}
        else:
            source = _("ids from the sequence %(sequence)s") % {"sequence": sequence.name}
        # Translators: table.id is a column, kind its type (e.g. INTEGER AUTO_INCREMENT), source
        # where its values come from (e.g. "no sequence task_id_sequence"; may be empty).
        line = _("It assumes %(table)s.id is %(kind)s") % {
            "table": table.fullname,
            "kind": kind,
        }
        lines.append(f"{line}, {source}." if source else f"{line}.")
    return lines
