"""``manage.py celery_sa_tables``: create the result tables, or print their DDL."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from celery_sa.backend_url import BackendURLError
from celery_sa.checks import one_line
from celery_sa.database import result_database
from celery_sa.schema import create_statements, dialect_named, result_tables

DIALECTS = ("mysql", "mariadb", "postgresql", "sqlite", "mssql")


class Command(BaseCommand):
    help = "Create Celery's result tables with safe types, or print their DDL."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        create = subcommands.add_parser(
            "create", help="Create the task and group tables (and sequences) that are missing."
        )
        create.add_argument(
            "--dry-run", action="store_true", help="Print the SQL instead of running it."
        )
        sql = subcommands.add_parser(
            "sql", help="Print the CREATE statements for a dialect, without connecting."
        )
        sql.add_argument(
            "--dialect",
            choices=DIALECTS,
            help="The SQL dialect (default: the one of CELERY_RESULT_BACKEND).",
        )

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        if subcommand == "sql":
            self.print_sql(options["dialect"])
        else:
            self.create(dry_run=options["dry_run"])

    def print_sql(self, dialect_name: str | None) -> None:
        name = dialect_name or self.result_url().get_backend_name()
        for statement in create_statements(dialect_named(name), result_tables()):
            self.stdout.write(f"{statement};")

    def create(self, *, dry_run: bool) -> None:
        tables = result_tables()
        engine = create_engine(self.result_url(), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                inspector = inspect(connection)
                missing = [
                    table
                    for table in (tables.task, tables.group)
                    if not inspector.has_table(table.name, schema=table.schema)
                ]
                for table in (tables.task, tables.group):
                    if table not in missing:
                        self.stdout.write(f"Table {table.fullname} already exists.")
                if dry_run and missing:
                    for statement in create_statements(connection.dialect, tables, missing):
                        self.stdout.write(f"{statement};")
                elif missing:
                    tables.metadata.create_all(connection, tables=missing, checkfirst=True)
        except SQLAlchemyError as exc:
            raise CommandError(f"Cannot create the result tables: {one_line(exc)}") from exc
        finally:
            engine.dispose()
        verb = "Would create" if dry_run else "Created"
        for table in missing:
            self.stdout.write(self.style.SUCCESS(f"{verb} table {table.fullname}."))
        if not missing:
            self.stdout.write("Nothing to do: the result tables exist.")

    def result_url(self) -> URL:
        try:
            return result_database().url
        except BackendURLError as exc:
            raise CommandError(str(exc)) from exc
