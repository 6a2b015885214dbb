"""SQL scripts as ``celery_sa_tables`` prints them: each statement ended as the database's
tools read it, and the offline upgrade for a DBA (``celery_sa_tables sql --from VERSION``),
composed without a connection."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils.translation import gettext as _
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateSequence

from celery_sa import __version__
from celery_sa.conf import configured_tables
from celery_sa.sql import vendors
from celery_sa.sql.schema import ResultTables, create_statements
from celery_sa.sql.state import DatabaseState
from celery_sa.tables import origins
from celery_sa.tables.execute import compiled
from celery_sa.tables.upgrade import TablePlan, plan_upgrade


def terminated(statements: Iterable[str], separator: str = "") -> list[str]:
    """Each statement ended by ``;``, and by ``separator`` on a line of its own where the
    database's tools end a batch with one (SQL Server's ``GO``)."""
    end = f";\n{separator}" if separator else ";"
    return [f"{statement}{end}" for statement in statements]


def batch_separator(dialect: Dialect) -> str:
    """What ends a batch in scripts for ``dialect`` ("" where nothing does)."""
    return vendors.get(dialect.name).ddl.batch_separator


def upgrade_sql(plan: TablePlan, dialect: Dialect) -> list[str]:
    """The statements of a live table's upgrade (``upgrade --dry-run``), terminated."""
    return terminated(
        (compiled(statement, dialect) for statement in plan.statements), batch_separator(dialect)
    )


def create_script(name: str) -> list[str]:
    """The CREATE statements of the result tables for the database ``name`` (a SQLAlchemy
    backend name), terminated."""
    return terminated(create_statements(vendors.offline_dialect(name), configured_tables()))


def upgrade_script(name: str, point: origins.StartingPoint) -> list[str]:
    """The upgrade of the tables ``point`` describes to celery_sa's, for the database
    ``name`` (a SQLAlchemy backend name), as lines to print: comments that say what it
    assumes and changes, then the statements."""
    dialect = vendors.offline_dialect(name)
    tables = configured_tables()
    state = origins.origin_state(point, dialect, tables)
    plans = plan_upgrade(state, tables)
    missing = [plan.table for plan in plans if not plan.exists]
    comments = [
        *_preamble(name, point, state, tables, plans),
        *(f"{table.fullname}: " + _("missing") for table in missing),
        *(f"{plan.table.fullname}: {problem.text}" for plan in plans for problem in plan.problems),
    ]
    statements = create_statements(dialect, tables, missing)
    statements += [compiled(statement, dialect) for plan in plans for statement in plan.statements]
    return [
        *(f"-- {line}" for line in comments),
        *terminated(statements, batch_separator(dialect)),
    ]


def _preamble(
    name: str,
    point: origins.StartingPoint,
    state: DatabaseState,
    tables: ResultTables,
    plans: list[TablePlan],
) -> list[str]:
    """What the script starts from and assumes, and how to run it."""
    advice = vendors.get(name).ddl.script_advice
    lines = [
        # Translators: start describes tables, e.g. "the tables Celery 4.4-5.5 creates with
        # SQLAlchemy 1.4 or later"; dialect is a database name such as mariadb.
        _("Upgrade of %(start)s to celery_sa %(version)s's, for %(dialect)s.")
        % {"start": point.describe(), "version": __version__, "dialect": name},
        *origins.assumptions(state, tables),
        _(
            "Written without a connection: check the tables are these first "
            "(`manage.py celery_sa_tables status` against the database lists the same "
            "changes), then run it as a whole."
        ),
        _(advice) if advice else "",
    ]
    if any(isinstance(s, CreateSequence) for plan in plans for s in plan.statements):
        lines.append(
            _(
                "Afterwards Celery's ids come from the sequences: every worker must run "
                "SQLAlchemy 1.4 or later (one on 1.3 leaves ids to the database, and they "
                "collide or fail)."
            )
        )
    return lines
