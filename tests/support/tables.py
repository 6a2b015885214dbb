"""Result tables as older Celery versions made them (``tests/tables/legacy/``), with rows an
old worker wrote, and ``celery_sa_tables`` run in-process on them."""

from __future__ import annotations

import pickle
import re
from datetime import datetime
from io import StringIO
from pathlib import Path
from typing import Any

from django.core.management import CommandError, call_command
from sqlalchemy import MetaData, Table, create_engine, insert, select
from sqlalchemy.pool import NullPool

from celery_sa.conf import configured_tables
from celery_sa.db import result_database
from celery_sa.management.commands import celery_sa_tables
from tests.support.databases import ResultDB, drop_result_tables

LEGACY = Path(__file__).resolve().parent.parent / "tables" / "legacy"
FIXTURE_DIALECT = {
    "mysqlclient": "mariadb",
    "pymysql": "mariadb",
    "postgresql": "postgresql",
    "sqlite": "sqlite",
}


def manage(*args: str) -> tuple[int, str]:
    """Run the command in-process; return its exit status and output, ending with the
    "changes pending" error of ``status`` as a shell shows it. Other errors are raised."""
    out = StringIO()
    try:
        call_command("celery_sa_tables", *args, stdout=out)
    except CommandError as exc:
        if exc.returncode != celery_sa_tables.PENDING_EXIT:
            raise
        return exc.returncode, f"{out.getvalue()}{exc}\n"
    return 0, out.getvalue()


def engine() -> Any:
    return create_engine(result_database().url, poolclass=NullPool)


def load_legacy(result_db: ResultDB, version: str) -> None:
    """Replace the result tables with the ones ``version`` of Celery created, plus the rows
    an old worker would have written (one a raw pickle, as Celery 4 stored results)."""
    drop_result_tables()
    sql = (LEGACY / f"celery-{version}.{FIXTURE_DIALECT[result_db.name]}.sql").read_text()
    database = engine()
    with database.begin() as connection:
        for statement in re.split(r";\s*(?:\n|$)", sql):
            if statement.strip():
                connection.exec_driver_sql(statement)
        if "CREATE SEQUENCE" in sql:  # old workers drew ids from the sequence
            table: Table = configured_tables().task
        else:  # ... or let AUTO_INCREMENT / SQLite pick them
            table = Table(configured_tables().task.name, MetaData(), autoload_with=connection)
        connection.execute(
            insert(table),
            [
                {
                    "task_id": f"old-{n}",
                    "status": "SUCCESS" if n else "FAILURE",
                    "result": pickle.dumps({"answer": n}),
                    "date_done": datetime(2020, 1, 1, 12, n),
                    "traceback": None if n else "Traceback (most recent call last): ...",
                }
                for n in range(3)
            ],
        )
    database.dispose()


def snapshot() -> list[tuple[Any, ...]]:
    """Every row's id, task id, state, result, traceback and time, in id order."""
    table = configured_tables().task
    columns = [table.c.id, table.c.task_id, table.c.status, table.c.result, table.c.traceback]
    database = engine()
    with database.connect() as connection:
        rows = connection.execute(select(*columns, table.c.date_done).order_by(table.c.id))
        snapshot = [tuple(row) for row in rows]
    database.dispose()
    return snapshot
