"""Compare live result tables with the safe ones in :mod:`celery_sa.tables.schema`; plan the DDL.

The plan is made from what the database says now, every time: a run that stopped half way
is resumed by planning again, and a table already up to date gets no statement at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from sqlalchemy import Connection, Index, Sequence, Table, inspect, select
from sqlalchemy import func as sql_func
from sqlalchemy.engine import Inspector
from sqlalchemy.schema import CreateSequence
from sqlalchemy.sql.ddl import ExecutableDDLElement

from celery_sa import dialects
from celery_sa.dialects.base import Database
from celery_sa.tables.ddl import AlterTable, RestartSequence
from celery_sa.tables.schema import ResultTables, Superseded

# Without these a table is something else that happens to have the configured name.
CORE_COLUMNS = {
    "task": ("id", "task_id", "status", "result", "date_done", "traceback"),
    "group": ("id", "taskset_id", "result", "date_done"),
}


@dataclass(frozen=True)
class Problem:
    """One way a live table differs from the safe one."""

    text: str
    rewrites: bool = False
    """Fixing it rewrites the whole table (slow, and blocks writers, on a large table)."""


@dataclass
class TablePlan:
    """What is wrong with one result table and the statements that fix it."""

    table: Table
    key: str
    exists: bool
    rows: int | None = None
    error: str | None = None
    problems: list[Problem] = field(default_factory=list)
    statements: list[ExecutableDDLElement] = field(default_factory=list)

    @property
    def rewrites(self) -> bool:
        return any(problem.rewrites for problem in self.problems)


def plan_upgrade(connection: Connection, tables: ResultTables) -> list[TablePlan]:
    """Plan both tables against the live database behind ``connection``."""
    inspector = inspect(connection)
    database = dialects.by_name(connection.dialect.name)
    if database is None:
        raise LookupError(f"celery_sa does not support {connection.dialect.name!r}")
    plans = [
        _plan_table(
            connection,
            inspector,
            database,
            table,
            key,
            [old for old in tables.superseded if old.by.table is table],
        )
        for key, table in tables.by_key().items()
    ]
    # The chord tables are celery_sa's own and only ever made whole: present or missing.
    plans += [
        TablePlan(table=table, key=key, exists=inspector.has_table(table.name, table.schema))
        for key, table in (("chord", tables.chord), ("part", tables.part))
    ]
    return plans


def _plan_table(
    connection: Connection,
    inspector: Inspector,
    database: Database,
    table: Table,
    key: str,
    superseded: list[Superseded],
) -> TablePlan:
    if not inspector.has_table(table.name, schema=table.schema):
        return TablePlan(table=table, key=key, exists=False)
    live = {c["name"]: c for c in inspector.get_columns(table.name, schema=table.schema)}
    plan = TablePlan(
        table=table, key=key, exists=True, rows=count_rows(connection, database, table)
    )
    missing_core = [name for name in CORE_COLUMNS[key] if name not in live]
    if missing_core:
        plan.error = ngettext(
            # Translators: columns lists the column names the table lacks.
            "%(table)s exists but is not a Celery result table (no column %(columns)s).",
            "%(table)s exists but is not a Celery result table (no column %(columns)s).",
            len(missing_core),
        ) % {"table": table.fullname, "columns": ", ".join(missing_core)}
        return plan
    add = [c for c in table.columns if c.name not in live]
    narrow = {
        c.name: why
        for c in table.columns
        if c.name in live and (why := database.too_narrow(live[c.name]["type"], c))
    }
    widen = [c for c in table.columns if c.name in narrow]
    indexes, invalid = _missing_indexes(connection, inspector, database, table)
    redundant = _superseded_indexes(inspector, table, superseded)
    plan.problems += [Problem(_("column %(column)s is missing") % {"column": c.name}) for c in add]
    plan.problems += [Problem(narrow[c.name], rewrites=True) for c in widen]
    plan.problems += _index_problems(indexes, invalid, redundant)
    plan.statements += database.drop_index_statements(invalid, if_exists=True)
    plan.statements += database.alter_statements(
        AlterTable(
            table,
            add=add,
            widen=widen,
            indexes=indexes,
            keep_auto_increment=live["id"].get("autoincrement") is True,
        )
    )
    # Only now: until the wider index is built, queries still have the old one.
    plan.statements += database.drop_index_statements([old.index() for old in redundant])
    if connection.dialect.supports_sequences:
        _plan_sequence(connection, inspector, database, table, plan)
    return plan


def _index_problems(
    indexes: list[Index], invalid: list[Index], redundant: list[Superseded]
) -> list[Problem]:
    problems = [
        Problem(
            _("index %(index)s is invalid (an interrupted build); build it again")
            % {"index": index.name}
            if index in invalid
            # Translators: columns lists the index's column names, e.g. "status, date_done".
            else _("index on (%(columns)s) is missing")
            % {"columns": ", ".join(c.name for c in index.columns)}
        )
        for index in indexes
    ]
    return problems + [
        Problem(
            # Translators: columns lists the wider index's column names.
            _("index %(index)s is superseded by the index on (%(columns)s); drop it")
            % {"index": old.name, "columns": ", ".join(c.name for c in old.by.columns)}
        )
        for old in redundant
    ]


def _missing_indexes(
    connection: Connection, inspector: Inspector, database: Database, table: Table
) -> tuple[list[Index], list[Index]]:
    """The wanted indexes no live index covers, and those left invalid (to drop and build
    again)."""
    live = inspector.get_indexes(table.name, schema=table.schema)
    invalid = database.invalid_indexes(connection, table)
    existing = {tuple(i["column_names"]) for i in live if i["name"] not in invalid}
    existing |= {
        tuple(constraint["column_names"])
        for constraint in inspector.get_unique_constraints(table.name, schema=table.schema)
    }
    wanted = sorted(table.indexes, key=lambda i: str(i.name))
    missing = [
        index
        for index in wanted
        if not any(cols[: len(index.columns)] == tuple(index.columns.keys()) for cols in existing)
    ]
    return missing, [index for index in missing if index.name in invalid]


def _superseded_indexes(
    inspector: Inspector, table: Table, superseded: list[Superseded]
) -> list[Superseded]:
    """Those of ``superseded`` that exist as celery_sa made them: that name, exactly those
    columns, not unique."""
    live = {
        i["name"]: (tuple(i["column_names"]), bool(i["unique"]))
        for i in inspector.get_indexes(table.name, schema=table.schema)
    }
    return [old for old in superseded if live.get(old.name) == (old.columns, False)]


def _plan_sequence(
    connection: Connection, inspector: Inspector, database: Database, table: Table, plan: TablePlan
) -> None:
    sequence = table.c.id.default
    if not isinstance(sequence, Sequence):
        return
    max_id = connection.execute(select(sql_func.max(table.c.id))).scalar() or 0
    if not inspector.has_sequence(sequence.name, schema=sequence.schema):
        start = max_id + 1
        plan.problems.append(
            Problem(
                _(
                    "sequence %(sequence)s is missing (Celery draws ids from it on this "
                    "database); create it to start at %(start)s"
                )
                % {"sequence": sequence.name, "start": f"{start:,}"}
            )
        )
        plan.statements.append(
            CreateSequence(Sequence(sequence.name, start=start, schema=sequence.schema))
        )
        return
    next_value = database.next_sequence_value(connection, sequence)
    if next_value is not None and next_value <= max_id:
        plan.problems.append(
            Problem(
                _(
                    # Translators: next, taken and restart are ids (numbers).
                    "sequence %(sequence)s would hand out %(next)s, but ids up to %(taken)s "
                    "are taken; restart it at %(restart)s"
                )
                % {
                    "sequence": sequence.name,
                    "next": f"{next_value:,}",
                    "taken": f"{max_id:,}",
                    "restart": f"{max_id + 1:,}",
                }
            )
        )
        plan.statements.append(RestartSequence(sequence, max_id + 1))
    for problem, statement in database.sequence_fixes(connection, sequence):
        plan.problems.append(Problem(problem))
        plan.statements.append(statement)


def count_rows(connection: Connection, database: Database, table: Table) -> int:
    """The table statistics' row count where the database keeps one, else ``COUNT(*)``."""

    def execute(sql: str, params: Any) -> Any:
        return connection.exec_driver_sql(sql, tuple(params)).scalar()

    estimate = database.estimate_rows(execute, table.schema, table.name)
    if estimate is not None:
        return estimate
    return int(connection.execute(select(sql_func.count()).select_from(table)).scalar_one())
