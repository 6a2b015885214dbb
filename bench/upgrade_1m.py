"""Benchmark: `celery_sa_tables upgrade` of a 1,000,000-row celery_taskmeta on MariaDB.

The table is the one Celery 5.7 creates (INT id, BLOB/TEXT columns, no status/name index),
filled with 1M rows by MariaDB's sequence engine. Each run times the real command and, as
the floor any type change costs, a bare rebuild of the same table (ALTER TABLE … FORCE,
ALGORITHM=COPY). Prints each run and the medians:

    .venv/bin/python bench/upgrade_1m.py [--rows 1000000] [--runs 3]

CELERY_SA_BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306) names the server; the
benchmark works in its own database, celery_sa_bench, and drops it at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
LEGACY = ROOT / "tests" / "legacy" / "celery-5.7.0.mariadb.sql"
DATABASE = "celery_sa_bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    server = make_url(os.environ.get("CELERY_SA_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306"))
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    bench_url = server.set(database=DATABASE)
    upgrades, rebuilds = [], []
    try:
        for run in range(1, options.runs + 1):
            fill = load(admin, bench_url, options.rows)
            rebuild = timed(
                lambda: execute(bench_url, "ALTER TABLE celery_taskmeta FORCE, ALGORITHM=COPY")
            )
            upgrade = timed(lambda: run_upgrade(bench_url))
            check_upgraded(bench_url)
            upgrades.append(upgrade)
            rebuilds.append(rebuild)
            print(
                f"run {run}: filled {options.rows:,} rows in {fill:.1f} s; "
                f"bare rebuild {rebuild:.1f} s; upgrade {upgrade:.1f} s "
                f"({upgrade / rebuild:.2f}x the rebuild)"
            )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
    upgrade, rebuild = statistics.median(upgrades), statistics.median(rebuilds)
    print(
        f"median of {options.runs}: upgrade of {options.rows:,} rows {upgrade:.1f} s "
        f"({options.rows / upgrade:,.0f} rows/s), {upgrade / rebuild:.2f}x a bare table rebuild "
        f"({rebuild:.1f} s)"
    )


def load(admin, url, rows: int) -> float:  # type: ignore[no-untyped-def]
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
        connection.execute(text(f"CREATE DATABASE {DATABASE}"))
    started = time.monotonic()
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in re.split(r";\s*(?:\n|$)", LEGACY.read_text()):
            if statement.strip():
                connection.exec_driver_sql(statement)
        # MariaDB's sequence engine makes the rows without a round trip each.
        connection.exec_driver_sql(
            "INSERT INTO celery_taskmeta (id, task_id, status, result, date_done, traceback,"
            " name, args, kwargs, worker, retries, queue)"
            f" SELECT seq, CONCAT('bench-', seq), ELT(1 + MOD(seq, 4), 'SUCCESS', 'FAILURE',"
            " 'RETRY', 'STARTED'), REPEAT('x', 200), NOW() - INTERVAL seq SECOND, NULL,"
            " CONCAT('app.tasks.t', MOD(seq, 50)), '[]', '{}', 'celery@bench', 0, 'celery'"
            f" FROM seq_1_to_{rows}"
        )
        connection.exec_driver_sql(f"SELECT SETVAL(task_id_sequence, {rows + 1})")
    engine.dispose()
    return time.monotonic() - started


def execute(url, sql: str) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(sql)
    engine.dispose()


def run_upgrade(url) -> None:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "ENV_FILE": os.devnull,
        "CELERY_RESULT_BACKEND": "db+" + url.render_as_string(hide_password=False),
    }
    argv = [sys.executable, "manage.py", "celery_sa_tables", "upgrade", "--noinput"]
    subprocess.run(argv, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def check_upgraded(url) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(url)
    with engine.connect() as connection:
        kind = connection.exec_driver_sql(
            "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
            " AND TABLE_NAME = 'celery_taskmeta' AND COLUMN_NAME = 'id'"
        ).scalar_one()
    engine.dispose()
    if kind != "bigint":
        raise SystemExit(f"the upgrade did not widen id (it is {kind})")


def timed(step) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    step()
    return time.monotonic() - started


if __name__ == "__main__":
    main()
