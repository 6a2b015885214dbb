"""``manage.py celery_sa_tables``: inspect, create and upgrade the result tables; print DDL."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from sqlalchemy import Connection, Table
from sqlalchemy.engine import URL

from celery_sa.conf import configured_tables
from celery_sa.db import result_database
from celery_sa.errors import BackendURLError
from celery_sa.management.base import TranslatedCommand
from celery_sa.models import forget_live_columns
from celery_sa.sql import vendors
from celery_sa.sql.schema import ResultTables, create_statements
from celery_sa.tables import execute, origins, scripts
from celery_sa.tables.upgrade import TablePlan

LARGE_TABLE_ROWS = 100_000
PENDING_EXIT = 1
ERROR_EXIT = 2


class Command(TranslatedCommand):
    lazy_help = gettext_lazy(
        "Inspect (status), create, upgrade Celery's result tables with safe types, or "
        "print their DDL (sql). status exits 1 when changes are pending, 2 on a problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        subcommands.add_parser(
            "status", help=_("Report missing tables, columns, indexes and unsafe types.")
        )
        create = subcommands.add_parser(
            "create",
            help=_("Create the task and group tables (and sequences) that are missing."),
        )
        create.add_argument("--dry-run", action="store_true", help=_("Print the SQL only."))
        upgrade = subcommands.add_parser(
            "upgrade",
            help=_("Bring existing tables up to date: add columns and indexes, widen types."),
        )
        upgrade.add_argument("--dry-run", action="store_true", help=_("Print the SQL only."))
        upgrade.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help=_("Do not ask before rewriting a large table."),
        )
        self.add_sql_arguments(
            subcommands.add_parser(
                "sql",
                help=_(
                    "Print the CREATE statements for a dialect, or with --from the upgrade of "
                    "the tables a Celery version created, without connecting (upgrade "
                    "--dry-run prints the upgrade of the live tables)."
                ),
            )
        )

    def add_sql_arguments(self, sql: CommandParser) -> None:
        sql.add_argument(
            "--dialect",
            choices=vendors.NAMES,
            help=_("The SQL dialect (default: the one of CELERY_RESULT_BACKEND)."),
        )
        sql.add_argument(
            "--from",
            dest="origin",
            metavar="CELERY_VERSION",
            help=_(
                "Print the upgrade of the tables this Celery version created (e.g. 5.2), "
                "to run without celery_sa: for a DBA."
            ),
        )
        sql.add_argument(
            "--sqlalchemy",
            choices=("1.3", "1.4"),
            help=_(
                "The SQLAlchemy that created those tables: 1.3 (or earlier) or 1.4 (or later); "
                "default 1.3 for Celery 4, 1.4 for Celery 5. It matters on MariaDB and SQL "
                "Server only."
            ),
        )

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        try:
            if subcommand == "sql" and options["sqlalchemy"] and not options["origin"]:
                raise CommandError(
                    _("--sqlalchemy describes the tables of --from: give both."),
                    returncode=ERROR_EXIT,
                )
            if subcommand == "sql" and options["origin"]:
                self.print_upgrade_sql(options["dialect"], options["origin"], options["sqlalchemy"])
            elif subcommand == "sql":
                self.print_create_sql(options["dialect"])
            elif subcommand == "status":
                self.status()
            elif subcommand == "create":
                self.create(dry_run=options["dry_run"])
            else:
                self.upgrade(dry_run=options["dry_run"], interactive=options["interactive"])
            if subcommand in ("create", "upgrade"):
                forget_live_columns()  # this process's admin sees the new columns at once
        except (execute.TableError, BackendURLError) as exc:
            raise CommandError(str(exc), returncode=ERROR_EXIT) from exc

    # -- subcommands ---------------------------------------------------------------------

    def print_create_sql(self, name: str | None) -> None:
        self.write_lines(scripts.create_script(name or self.result_url().get_backend_name()))

    def print_upgrade_sql(self, name: str | None, version: str, sqlalchemy: str | None) -> None:
        name = name or self.result_url().get_backend_name()
        try:
            point = origins.starting_point(version, sqlalchemy)
        except ValueError as exc:
            raise CommandError(str(exc), returncode=ERROR_EXIT) from exc
        self.write_lines(scripts.upgrade_script(name, point))

    def status(self) -> None:
        with execute.connect(self.result_url()) as connection:
            plans = execute.plan(connection, configured_tables())
        pending = sum(self.table_status(plan) for plan in plans)
        if pending:
            raise CommandError(
                ngettext(
                    "%(n)s change pending: run `manage.py celery_sa_tables upgrade` "
                    "(--dry-run shows the SQL).",
                    "%(n)s changes pending: run `manage.py celery_sa_tables upgrade` "
                    "(--dry-run shows the SQL).",
                    pending,
                )
                % {"n": pending},
                returncode=PENDING_EXIT,
            )
        self.stdout.write(_("The result tables are up to date."), self.style.SUCCESS)

    def table_status(self, plan: TablePlan) -> int:
        """Write what ``plan`` would change in its table; return how many changes (a missing
        table is one)."""
        if not plan.exists:
            self.stdout.write(
                _("%(table)s: missing (create or upgrade creates it)")
                % {"table": plan.table.fullname}
            )
            return 1
        table = table_and_rows(plan)
        if not plan.problems:
            self.stdout.write(_("%(table)s: up to date") % {"table": table})
            return 0
        changes = len(plan.problems)
        self.stdout.write(
            ngettext("%(table)s: %(n)s change pending", "%(table)s: %(n)s changes pending", changes)
            % {"table": table, "n": changes}
        )
        for problem in plan.problems:
            text = (
                _("%(problem)s (rewrites the table)") % {"problem": problem.text}
                if problem.rewrites
                else problem.text
            )
            self.stdout.write(f"  - {text}")
        return changes

    def create(self, *, dry_run: bool) -> None:
        tables = configured_tables()
        with execute.connect(self.result_url()) as connection:
            missing = execute.missing_tables(connection, tables)
            for table in tables.all():
                if table not in missing:
                    self.stdout.write(
                        _("Table %(table)s already exists.") % {"table": table.fullname}
                    )
            self.create_tables(connection, tables, missing, dry_run=dry_run)
        if not missing:
            self.stdout.write(_("Nothing to do: the result tables exist."))

    def upgrade(self, *, dry_run: bool, interactive: bool) -> None:
        tables = configured_tables()
        with execute.connect(self.result_url()) as connection:
            plans = execute.plan(connection, tables)
            missing = [plan.table for plan in plans if not plan.exists]
            changed = [plan for plan in plans if plan.statements]
            if not dry_run:
                self.confirm_rewrites(changed, connection.dialect.name, interactive)
            self.create_tables(connection, tables, missing, dry_run=dry_run)
            for plan in changed:
                self.apply(connection, plan, dry_run=dry_run)
        count = sum(len(plan.problems) for plan in changed) + len(missing)
        if not count:
            self.stdout.write(_("Nothing to do: the result tables are up to date."))
        elif dry_run:
            self.stdout.write(
                ngettext("Would apply %(n)s change.", "Would apply %(n)s changes.", count)
                % {"n": count}
            )
        else:
            self.stdout.write(
                ngettext("Applied %(n)s change.", "Applied %(n)s changes.", count) % {"n": count},
                self.style.SUCCESS,
            )

    # -- steps -----------------------------------------------------------------------------

    def create_tables(
        self, connection: Connection, tables: ResultTables, missing: list[Table], *, dry_run: bool
    ) -> None:
        if not missing:
            return
        if dry_run:
            statements = create_statements(connection.dialect, tables, missing)
            self.write_lines(scripts.terminated(statements))
        else:
            execute.create_tables(connection, tables, missing)
        done = _("Would create table %(table)s.") if dry_run else _("Created table %(table)s.")
        for table in missing:
            self.stdout.write(done % {"table": table.fullname}, self.style.SUCCESS)

    def confirm_rewrites(self, plans: list[TablePlan], dialect: str, interactive: bool) -> None:
        rules = vendors.get(dialect).ddl
        note = _(rules.rewrite_note) if rules.rewrite_note else ""
        for plan in plans:
            rows = plan.rows or 0
            if not plan.rewrites or rows < LARGE_TABLE_ROWS:
                continue
            warning = ngettext(
                # Translators: note is a sentence about the database, possibly empty.
                "%(table)s has about %(n)s row and widening a type rewrites it. %(note)s",
                "%(table)s has about %(n)s rows and widening a type rewrites all of them. %(note)s",
                rows,
            )
            self.stdout.write(
                warning % {"table": plan.table.fullname, "n": f"{rows:,}", "note": note},
                self.style.WARNING,
            )
            if interactive and sys.stdin.isatty():
                # Translators: only y or yes (in English) is read as yes.
                answer = input(_("Continue? [y/N] "))
                if answer.strip().lower() not in ("y", "yes"):
                    raise CommandError(_("Upgrade cancelled; nothing was changed."))

    def apply(self, connection: Connection, plan: TablePlan, *, dry_run: bool) -> None:
        for problem in plan.problems:
            self.stdout.write(
                # Translators: problem says what differs, e.g. "column date_started is missing".
                _("%(table)s: %(problem)s")
                % {"table": plan.table.fullname, "problem": problem.text}
            )
        if dry_run:
            self.write_lines(scripts.upgrade_sql(plan, connection.dialect))
            return
        started = time.monotonic()
        execute.apply(connection, plan)
        upgraded = ngettext(
            "Upgraded %(table)s: %(n)s change in %(seconds)s s.",
            "Upgraded %(table)s: %(n)s changes in %(seconds)s s.",
            len(plan.problems),
        )
        self.stdout.write(
            upgraded
            % {
                "table": plan.table.fullname,
                "n": len(plan.problems),
                "seconds": f"{time.monotonic() - started:.1f}",
            },
            self.style.SUCCESS,
        )

    # -- plumbing --------------------------------------------------------------------------

    def result_url(self) -> URL:
        return result_database().url

    def write_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.stdout.write(line)


def table_and_rows(plan: TablePlan) -> str:
    """The table's name, with its row count when known: ``celery_taskmeta (about 12 rows)``."""
    if plan.rows is None:
        return plan.table.fullname
    return ngettext("%(table)s (about %(n)s rows)", "%(table)s (about %(n)s rows)", plan.rows) % {
        "table": plan.table.fullname,
        "n": f"{plan.rows:,}",
    }
