"""``manage.py celery_sa_tables``: inspect, create and upgrade the result tables; print DDL."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from sqlalchemy import Connection, Table, create_engine, inspect
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.ddl import ExecutableDDLElement

from celery_sa.backend_url import BackendURLError
from celery_sa.checks import cannot_connect, one_line
from celery_sa.database import result_database
from celery_sa.schema import ResultTables, create_statements, dialect_named, result_tables
from celery_sa.upgrade import TablePlan, plan_upgrade

DIALECTS = ("mysql", "mariadb", "postgresql", "sqlite", "mssql")
LARGE_TABLE_ROWS = 100_000
REWRITES = {
    "mysql": "It is copied (ALGORITHM=COPY, LOCK=SHARED): reads go on, Celery's writes wait.",
    "mariadb": "It is copied (ALGORITHM=COPY, LOCK=SHARED): reads go on, Celery's writes wait.",
    "postgresql": "It is rewritten under an exclusive lock: reads and writes wait.",
}
PENDING_EXIT = 1
ERROR_EXIT = 2


class Command(BaseCommand):
    help = (
        "Inspect (status), create, upgrade Celery's result tables with safe types, or print "
        "their DDL (sql). status exits 1 when changes are pending, 2 on a problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        subcommands.add_parser(
            "status", help="Report missing tables, columns, indexes and unsafe types."
        )
        create = subcommands.add_parser(
            "create", help="Create the task and group tables (and sequences) that are missing."
        )
        create.add_argument("--dry-run", action="store_true", help="Print the SQL only.")
        upgrade = subcommands.add_parser(
            "upgrade",
            help="Bring existing tables up to date: add columns and indexes, widen types.",
        )
        upgrade.add_argument("--dry-run", action="store_true", help="Print the SQL only.")
        upgrade.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask before rewriting a large table.",
        )
        sql = subcommands.add_parser(
            "sql", help="Print the CREATE statements for a dialect, without connecting."
        )
        sql.add_argument(
            "--dialect",
            choices=DIALECTS,
            help="The SQL dialect (default: the one of CELERY_RESULT_BACKEND).",
        )
        sql.add_argument(
            "--upgrade",
            action="store_true",
            help="Print the upgrade of the live tables instead (connects to read them).",
        )

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        if subcommand == "sql" and not options["upgrade"]:
            self.print_create_sql(options["dialect"])
        elif subcommand == "sql" or (subcommand == "upgrade" and options["dry_run"]):
            self.upgrade(dry_run=True, interactive=False)
        elif subcommand == "upgrade":
            self.upgrade(dry_run=False, interactive=options["interactive"])
        elif subcommand == "status":
            self.status()
        else:
            self.create(dry_run=options["dry_run"])

    # -- subcommands ---------------------------------------------------------------------

    def print_create_sql(self, dialect_name: str | None) -> None:
        name = dialect_name or self.result_url().get_backend_name()
        self.write_sql(create_statements(dialect_named(name), result_tables()))

    def status(self) -> None:
        tables = result_tables()
        with self.connect() as connection:
            plans = self.plan(connection, tables)
        pending = 0
        for plan in plans:
            if not plan.exists:
                self.stdout.write(f"{plan.table.fullname}: missing (create or upgrade creates it)")
                pending += 1
                continue
            rows = "" if plan.rows is None else f" (about {plan.rows:,} rows)"
            if not plan.problems:
                self.stdout.write(f"{plan.table.fullname}{rows}: up to date")
                continue
            self.stdout.write(
                f"{plan.table.fullname}{rows}: {_changes(len(plan.problems))} pending"
            )
            for problem in plan.problems:
                rewrite = " (rewrites the table)" if problem.rewrites else ""
                self.stdout.write(f"  - {problem.text}{rewrite}")
            pending += len(plan.problems)
        if not pending:
            self.stdout.write(self.style.SUCCESS("The result tables are up to date."))
            return
        self.stdout.write(
            self.style.WARNING(
                f"{_changes(pending)} pending: run `manage.py celery_sa_tables upgrade` "
                "(--dry-run shows the SQL)."
            )
        )
        sys.exit(PENDING_EXIT)

    def create(self, *, dry_run: bool) -> None:
        tables = result_tables()
        with self.connect() as connection:
            missing = self.missing_tables(connection, tables)
            for table in (tables.task, tables.group):
                if table not in missing:
                    self.stdout.write(f"Table {table.fullname} already exists.")
            self.create_tables(connection, tables, missing, dry_run=dry_run)
        if not missing:
            self.stdout.write("Nothing to do: the result tables exist.")

    def upgrade(self, *, dry_run: bool, interactive: bool) -> None:
        tables = result_tables()
        with self.connect() as connection:
            plans = self.plan(connection, tables)
            missing = [plan.table for plan in plans if not plan.exists]
            changed = [plan for plan in plans if plan.statements]
            if not dry_run:
                self.confirm_rewrites(changed, connection.dialect.name, interactive)
            self.create_tables(connection, tables, missing, dry_run=dry_run)
            for plan in changed:
                self.apply(connection, plan, dry_run=dry_run)
        count = sum(len(plan.problems) for plan in changed) + len(missing)
        if not count:
            self.stdout.write("Nothing to do: the result tables are up to date.")
        elif dry_run:
            self.stdout.write(f"Would apply {_changes(count)}.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Applied {_changes(count)}."))

    # -- steps -----------------------------------------------------------------------------

    def plan(self, connection: Connection, tables: ResultTables) -> list[TablePlan]:
        plans: list[TablePlan] = self.run_step(
            lambda: plan_upgrade(connection, tables), "inspecting the tables"
        )
        errors = [plan.error for plan in plans if plan.error]
        if errors:
            raise CommandError(" ".join(errors), returncode=ERROR_EXIT)
        return plans

    def missing_tables(self, connection: Connection, tables: ResultTables) -> list[Table]:
        inspector = self.run_step(lambda: inspect(connection), "inspecting the tables")
        return [
            table
            for table in (tables.task, tables.group)
            if not inspector.has_table(table.name, schema=table.schema)
        ]

    def create_tables(
        self, connection: Connection, tables: ResultTables, missing: list[Table], *, dry_run: bool
    ) -> None:
        if not missing:
            return
        statements = create_statements(connection.dialect, tables, missing)
        if dry_run:
            self.write_sql(statements)
        else:
            self.run_step(
                lambda: tables.metadata.create_all(connection, tables=missing, checkfirst=True),
                "\n".join(statements),
            )
        verb = "Would create" if dry_run else "Created"
        for table in missing:
            self.stdout.write(self.style.SUCCESS(f"{verb} table {table.fullname}."))

    def confirm_rewrites(self, plans: list[TablePlan], dialect: str, interactive: bool) -> None:
        for plan in plans:
            if not plan.rewrites or (plan.rows or 0) < LARGE_TABLE_ROWS:
                continue
            self.stdout.write(
                self.style.WARNING(
                    f"{plan.table.fullname} has about {plan.rows:,} rows and widening a type "
                    f"rewrites all of them. {REWRITES.get(dialect, '')}"
                )
            )
            if interactive and sys.stdin.isatty():
                answer = input("Continue? [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    raise CommandError("Upgrade cancelled; nothing was changed.")

    def apply(self, connection: Connection, plan: TablePlan, *, dry_run: bool) -> None:
        for problem in plan.problems:
            self.stdout.write(f"{plan.table.fullname}: {problem.text}")
        if dry_run:
            self.write_sql(
                _compiled(statement, connection.dialect) for statement in plan.statements
            )
            return
        started = time.monotonic()
        for statement in plan.statements:
            sql = _compiled(statement, connection.dialect)
            self.run_step(lambda statement=statement: connection.execute(statement), sql)
        self.stdout.write(
            self.style.SUCCESS(
                f"Upgraded {plan.table.fullname}: {_changes(len(plan.problems))} "
                f"in {time.monotonic() - started:.1f} s."
            )
        )

    # -- plumbing --------------------------------------------------------------------------

    def result_url(self) -> URL:
        try:
            return result_database().url
        except BackendURLError as exc:
            raise CommandError(str(exc), returncode=ERROR_EXIT) from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection in autocommit: every statement stands alone, so a failed or
        interrupted upgrade keeps what was done and the next run resumes from there."""
        url = self.result_url()
        try:
            engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
            connection = engine.connect()
        except (SQLAlchemyError, ImportError) as exc:
            raise CommandError(cannot_connect(url, exc), returncode=ERROR_EXIT) from exc
        try:
            yield connection
        finally:
            connection.close()
            engine.dispose()

    def run_step(self, step: Any, sql: str) -> Any:
        try:
            return step()
        except SQLAlchemyError as exc:
            statement = " ".join(sql.split())
            raise CommandError(
                f"{one_line(exc)} (while running: {statement})", returncode=ERROR_EXIT
            ) from exc

    def write_sql(self, statements: Any) -> None:
        for statement in statements:
            self.stdout.write(f"{statement};")


def _compiled(statement: ExecutableDDLElement, dialect: Dialect) -> str:
    return str(statement.compile(dialect=dialect)).strip()


def _changes(count: int) -> str:
    return f"{count} change" if count == 1 else f"{count} changes"
