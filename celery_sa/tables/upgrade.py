"""Compare the result tables as they are with the safe ones in :mod:`celery_sa.sql.schema`;
plan the DDL.

Live, the plan is made from what the database says now, every time: a run that stopped half
way is resumed by planning again, and a table already up to date gets no statement at all.
Offline, it is made from the tables a Celery version creates (:mod:`celery_sa.tables.origins`),
for a DBA's script.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from sqlalchemy import Index, Sequence, Table
from sqlalchemy.schema import CreateSequence
from sqlalchemy.sql.ddl import ExecutableDDLElement

from celery_sa.sql import vendors
from celery_sa.sql.ddl import AlterTable, RestartSequence, SequenceAfterIds
from celery_sa.sql.live import made_whole
from celery_sa.sql.schema import ResultTables, Superseded, id_sequence
from celery_sa.sql.state import DatabaseState, SequenceState, TableState
from celery_sa.sql.vendors import Vendor
from celery_sa.sql.vendors.base import DDLRules

# Without these a table is something else that happens to have the configured name.
CORE_COLUMNS = {
    "task": ("id", "task_id", "status", "result", "date_done", "traceback"),
    "group": ("id", "taskset_id", "result", "date_done"),
    # celery_sa 0.2's chord table; later columns are added to it.
    "chord": ("group_id", "chord_size", "date_created", "date_fired"),
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


def plan_upgrade(state: DatabaseState, tables: ResultTables) -> list[TablePlan]:
    """Plan every table against ``state``: what is there now."""
    planned = {**tables.by_key(), "chord": tables.chord}
    plans = [
        _plan_table(
            state,
            table,
            key,
            [old for old in tables.superseded if old.by.table is table],
        )
        for key, table in planned.items()
    ]
    # The chord parts, the attempts and the group members are celery_sa's own and only
    # ever made whole:
    # present or missing.
    plans += [
        TablePlan(table=table, key=key, exists=state.table(table) is not None)
        for key, table in made_whole(tables).items()
    ]
    return plans


def _plan_table(
    state: DatabaseState, table: Table, key: str, superseded: list[Superseded]
) -> TablePlan:
    found = state.table(table)
    if found is None:
        return TablePlan(table=table, key=key, exists=False)
    vendor = vendors.get(state.dialect.name)
    rules = vendor.ddl
    live = found.columns
    identifier = live.get("id")  # the chord table has none
    plan = TablePlan(table=table, key=key, exists=True, rows=found.rows)
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
    narrow = _too_narrow(rules, found, table)
    widen = [c for c in table.columns if c.name in narrow]
    indexes, invalid = _missing_indexes(found, table)
    redundant = _superseded_indexes(found, superseded)
    plan.problems += [Problem(_("column %(column)s is missing") % {"column": c.name}) for c in add]
    plan.problems += [Problem(narrow[c.name], rewrites=True) for c in widen]
    plan.problems += _index_problems(indexes, invalid, redundant)
    plan.statements += rules.drop_index_statements(invalid, if_exists=True)
    plan.statements += rules.alter_statements(
        AlterTable(
            table,
            add=add,
            widen=widen,
            indexes=indexes,
            keep_auto_increment=identifier is not None and identifier.auto_increment,
            identity=identifier is not None and identifier.identity,
        )
    )
    # Only now: until the wider index is built, queries still have the old one.
    plan.statements += rules.drop_index_statements([old.index() for old in redundant])
    if state.dialect.supports_sequences:
        _plan_sequence(state, vendor, table, found, plan)
    return plan


def _too_narrow(rules: DDLRules, found: TableState, table: Table) -> dict[str, str]:
    """Why each column to widen must be, by name: those that hold less than Celery writes,
    and, as the table is then rewritten anyway, those that only gain precision."""
    live = found.columns
    present = [column for column in table.columns if column.name in live]
    narrow = {
        column.name: why
        for column in present
        if (why := rules.too_narrow(live[column.name], column))
    }
    if narrow:
        narrow |= {
            column.name: why
            for column in present
            if column.name not in narrow and (why := rules.less_precise(live[column.name], column))
        }
    return {name: why.translated(_) for name, why in narrow.items()}


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


def _missing_indexes(found: TableState, table: Table) -> tuple[list[Index], list[Index]]:
    """The wanted indexes no index of the table covers, and those left invalid (to drop and
    build again)."""
    invalid = {index.name for index in found.indexes if not index.valid}
    existing = {index.columns for index in found.indexes if index.valid}
    wanted = sorted(table.indexes, key=lambda i: str(i.name))
    missing = [
        index
        for index in wanted
        if not any(cols[: len(index.columns)] == tuple(index.columns.keys()) for cols in existing)
    ]
    return missing, [index for index in missing if index.name in invalid]


def _superseded_indexes(found: TableState, superseded: list[Superseded]) -> list[Superseded]:
    """Those of ``superseded`` that exist as celery_sa made them: that name, exactly those
    columns, not unique."""
    live = {index.name: (index.columns, index.unique) for index in found.indexes}
    return [old for old in superseded if live.get(old.name) == (old.columns, False)]


def _plan_sequence(
    state: DatabaseState, vendor: Vendor, table: Table, found: TableState, plan: TablePlan
) -> None:
    sequence = id_sequence(table)
    if sequence is None:
        return
    existing = state.sequence(sequence)
    if existing is None:
        _plan_missing_sequence(vendor, sequence, table, found.max_id, plan)
        return
    next_value = _plan_sequence_position(vendor, sequence, table, existing, found.max_id, plan)
    if not existing.bigint:
        plan.problems.append(
            Problem(_("sequence %(name)s is INTEGER; widen it to BIGINT") % {"name": sequence.name})
        )
        plan.statements += vendor.ddl.widen_sequence_statements(sequence, table, next_value)


def _plan_missing_sequence(
    vendor: Vendor, sequence: Sequence, table: Table, max_id: int | None, plan: TablePlan
) -> None:
    plan.problems.append(
        Problem(
            _(
                "sequence %(sequence)s is missing (Celery draws ids from it on this "
                "database); create it to start at %(start)s"
            )
            % {
                "sequence": sequence.name,
                "start": _("the highest id + 1") if max_id is None else f"{max_id + 1:,}",
            }
        )
    )
    if max_id is None or vendor.restarts_in_sql:  # the SQL reads the highest id
        plan.statements.append(
            CreateSequence(Sequence(sequence.name, start=1, schema=sequence.schema))
        )
        plan.statements.append(SequenceAfterIds(sequence, table))
    else:
        plan.statements.append(
            CreateSequence(Sequence(sequence.name, start=max_id + 1, schema=sequence.schema))
        )


def _plan_sequence_position(
    vendor: Vendor,
    sequence: Sequence,
    table: Table,
    existing: SequenceState,
    max_id: int | None,
    plan: TablePlan,
) -> int | None:
    """Plan moving an existing sequence past the ids it would collide with; return what it
    hands out next afterwards (None where that is not known)."""
    next_value = existing.next_value
    if vendor.sequences_may_start_at_minimum and (
        (next_value is None and max_id is None) or (next_value is not None and next_value < 1)
    ):
        # Where it stands is not known (offline), or it counts up from far below every id.
        plan.problems.append(
            Problem(
                _(
                    "sequence %(sequence)s may hand out ids from %(minimum)s (SQLAlchemy 2 "
                    "creates it without START WITH); restart it after the highest id"
                )
                % {"sequence": sequence.name, "minimum": f"{-(2**63):,}"}
            )
        )
        plan.statements.append(SequenceAfterIds(sequence, table))
        return next_value
    if next_value is None or max_id is None or next_value > max_id:
        return next_value
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
    plan.statements.append(
        SequenceAfterIds(sequence, table)
        if vendor.restarts_in_sql
        else RestartSequence(sequence, max_id + 1)
    )
    return max_id + 1
