"""Benchmark: the admin's overview page, the metrics view and celery_sa_stats on 1,000,000 rows.

    .venv/bin/python bench/overview_1m.py [--rows 1000000] [--runs 5] [--keep] [--explain]

The rows live in a MariaDB database of their own (CELERY_SA_BENCH_MYSQL_URL, default
mysql://root@127.0.0.1:3306; database celery_sa_bench_overview, dropped at the end unless
--keep, which also reuses it when it holds --rows rows: quick re-runs, the rows a little
older each time). Row n is done rows - n seconds ago (about 11.6 days for 1,000,000: 24 hours
hold 86,400 rows, 7 days 604,800, 30 days all), one of 50 task names, each with its own
runtime (10 ms to 30 s, date_started set), queue and failure rate (1 to 7 %, about 4 % in
all, tracebacks ending in a line of its own); 2 % RETRY, 0.5 % REVOKED, the rest SUCCESS,
except in the last 5 minutes, where 40 % are still STARTED or RECEIVED. Every row that
started was sent 1 ms to 10 s before (date_sent: queue waits), and each RETRY row's earlier
executions are in the attempt table (1 to 3 each, about 40,000 in all).

Each view is requested through Django's test client in this process (server time: queries,
rendering, no network) as a superuser; the command is called as a user runs it. Printed: every
run after one warm-up, the median, and where there is one its target, the median as a share
of it and PASS or MISS. --explain adds MariaDB's plan of each distinct query of the 7-day page.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import in_scratch_database, setup_django, signed_in_client  # noqa: E402

DATABASE = "celery_sa_bench_overview"
PAGE = "/admin/celery_sa/overview/"
METRICS = "/metrics/celery/"
# Row n's fields from seq (n), k (its name's number), u (a pseudo-random 0..10006, not tied
# to the name) and age (seconds before the fill's now).
STATUS = """CASE
    WHEN age < 300 AND u < 3000 THEN 'STARTED'
    WHEN age < 300 AND u < 4000 THEN 'RECEIVED'
    WHEN u < 100 * (1 + MOD(k, 7)) THEN 'FAILURE'
    WHEN u < 100 * (1 + MOD(k, 7)) + 200 THEN 'RETRY'
    WHEN u < 100 * (1 + MOD(k, 7)) + 250 THEN 'REVOKED'
    ELSE 'SUCCESS' END"""
# 10 ms for name 0 to 30 s for name 49, log-spaced, each row 0.5x to 1.5x its name's.
RUNTIME_US = "ROUND(10000 * POW(3000, k / 49) * (0.5 + MOD(seq, 101) / 100))"
# Queue waits from 1 ms to 10 s, log-spaced.
WAIT_US = "ROUND(1000 * POW(10000, MOD(seq * 13, 97) / 96))"
TRACEBACK = """CASE status
    WHEN 'FAILURE' THEN CONCAT(@frames, ELT(1 + MOD(k, 4), 'ValueError: bad input ',
        'KeyError: missing key ', 'TimeoutError: upstream timed out after ',
        'RuntimeError: step failed at '), k)
    WHEN 'RETRY' THEN CONCAT(@frames, 'celery.exceptions.Retry: Retry in 60s')
    END"""
FRAME = '  File "/srv/app/tasks.py", line 120, in run\n    return step(payload)\n'

# Medians against their targets in ms; celery_sa_stats over 7 days against its time before
# the overview (the issue: "its 7 days take 1.4 s today").
TARGETS = {
    "page 24h": (200.0, "target"),
    "page 7d": (500.0, "target"),
    "page 30d": (1000.0, "target"),
    "stats --since 7d": (1400.0, "today"),
}


def fill_sql(rows: int) -> str:
    """One INSERT … SELECT of ``rows`` rows; its parameters: rows, now, rows."""
    return f"""INSERT INTO celery_taskmeta (id, task_id, status, result, date_done, traceback,
        name, args, kwargs, worker, retries, queue, date_started, date_sent)
    SELECT seq, CONCAT('bench-', seq), status, '42', done, {TRACEBACK},
        CONCAT('app.tasks.t', k), '[]', '{{}}', CONCAT('celery@w', MOD(seq, 7)),
        IF(status = 'RETRY', 1 + MOD(seq, 3), 0), ELT(1 + MOD(k, 3), 'celery', 'priority', 'bulk'),
        CASE WHEN status IN ('SUCCESS', 'FAILURE', 'RETRY') THEN done - INTERVAL runtime MICROSECOND
             WHEN status = 'STARTED' THEN done END,
        CASE WHEN status IN ('SUCCESS', 'FAILURE', 'RETRY') THEN
                 done - INTERVAL runtime MICROSECOND - INTERVAL wait MICROSECOND
             WHEN status = 'STARTED' THEN done - INTERVAL wait MICROSECOND END
    FROM (
        SELECT seq, k, done, {STATUS} AS status, {RUNTIME_US} AS runtime, {WAIT_US} AS wait
        FROM (
            SELECT seq, MOD(seq, 50) AS k, MOD(seq * 7907, 10007) AS u, %s - seq AS age,
                %s - INTERVAL (%s - seq) SECOND AS done
            FROM seq_1_to_{rows}
        ) AS numbered
    ) AS rows_"""


# Each RETRY row's earlier executions (attempt 0 to retries - 1), a minute apart, the last
# ending a minute before the row's start.
ATTEMPTS_SQL = """INSERT INTO celery_sa_attempt (task_id, attempt, name, status, date_started,
        date_done, exception, message, traceback)
    SELECT task_id, n.seq, name, 'RETRY',
        date_started - INTERVAL (retries - n.seq) MINUTE - INTERVAL 1 SECOND,
        date_started - INTERVAL (retries - n.seq) MINUTE,
        ELT(1 + MOD(id, 3), 'ConnectionError', 'TimeoutError', 'OperationalError'),
        'upstream unavailable', CONCAT(@frames, 'ConnectionError: upstream unavailable')
    FROM celery_taskmeta JOIN seq_0_to_2 AS n ON n.seq < retries
    WHERE status = 'RETRY'"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--keep", action="store_true", help=f"keep {DATABASE} and reuse it when it is full"
    )
    parser.add_argument("--explain", action="store_true", help="EXPLAIN the 7-day page's queries")
    options = parser.parse_args()
    in_scratch_database(
        DATABASE, options.keep, lambda: run(options.rows, options.runs, options.explain)
    )


def run(rows: int, runs: int, explain: bool) -> None:
    setup_django()
    prepare(rows)
    print(f"indexes of celery_taskmeta: {indexes()}")
    client = signed_in_client()
    cases = [
        *((f"page {key}", get(client, f"{PAGE}?window={key}")) for key in ("24h", "7d", "30d")),
        ("metrics, 1 h window", get(client, METRICS)),
        ("metrics, 30 d window", get(client, METRICS, timedelta(days=30))),
        *((f"stats --since {age}", stats(age)) for age in ("7d", "24h")),
    ]
    print(f"{runs} runs after a warm-up, {rows:,} rows, server time in ms:")
    for what, call in cases:
        timings = []
        for attempt in range(runs + 1):
            started = time.perf_counter()
            note = call()
            if attempt:
                timings.append((time.perf_counter() - started) * 1000)
        median = statistics.median(timings)
        each = " ".join(f"{ms:7.1f}" for ms in timings)
        print(f"  {what:<22} {each}   median {median:7.1f}  {verdict(what, median)}  {note}")
    if explain:
        explain_page(client, f"{PAGE}?window=7d")


def prepare(rows: int) -> None:
    """The tables and ``rows`` rows, unless a kept database has them already."""
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    if "celery_taskmeta" in connection.introspection.table_names():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*), TIMESTAMPDIFF(SECOND, MAX(date_done), UTC_TIMESTAMP())"
                " FROM celery_taskmeta"
            )
            found, age = cursor.fetchone()
        if found == rows:
            print(f"reused {rows:,} rows, the newest done {age:,} s ago")
            return
    call_command("celery_sa_tables", "create", stdout=open(os.devnull, "w"))
    started = time.monotonic()
    fill(rows)
    print(f"filled {rows:,} rows in {time.monotonic() - started:.0f} s")


def fill(rows: int) -> None:
    from django.db import connection

    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE TABLE celery_taskmeta")
        cursor.execute(
            "SET @frames = CONCAT('Traceback (most recent call last):\n', REPEAT(%s, 8))", [FRAME]
        )
        cursor.execute(fill_sql(rows), [rows, now, rows])
        cursor.execute("TRUNCATE TABLE celery_sa_attempt")
        cursor.execute(ATTEMPTS_SQL)
        cursor.execute(f"ALTER SEQUENCE task_id_sequence RESTART WITH {rows + 1}")
        cursor.execute("ANALYZE TABLE celery_taskmeta, celery_sa_attempt")
        cursor.fetchall()


def indexes() -> str:
    from django.db import connection

    columns: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        cursor.execute("SHOW INDEX FROM celery_taskmeta")
        names = [column[0] for column in cursor.description]
        for row in cursor.fetchall():
            index = dict(zip(names, row, strict=True))
            columns.setdefault(index["Key_name"], []).append(index["Column_name"])
    return ", ".join(f"{name} ({', '.join(cols)})" for name, cols in columns.items())


def get(client, url: str, window: timedelta | None = None) -> Callable[[], str]:  # type: ignore[no-untyped-def]
    """A request of ``url`` (with CELERY_SA_METRICS_WINDOW = ``window`` if given) that
    must answer 200; it returns the size of the answer."""
    from django.test import override_settings

    def call() -> str:
        if window is None:
            response = client.get(url)
        else:
            with override_settings(CELERY_SA_METRICS_WINDOW=window):
                response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        return f"({len(response.content) / 1024:.0f} KiB)"

    return call


def stats(age: str) -> Callable[[], str]:
    """``manage.py celery_sa_stats --since age``; it returns the first line printed."""
    from django.core.management import call_command

    def call() -> str:
        out = StringIO()
        call_command("celery_sa_stats", "--since", age, stdout=out)
        return out.getvalue().splitlines()[0]

    return call


def verdict(what: str, median: float) -> str:
    if what not in TARGETS:
        return f"{'(no target)':<33}"
    target, kind = TARGETS[what]
    mark = "PASS" if median <= target else "MISS"
    return f"{kind} {target:6.0f}  {median / target:5.2f}x  {mark}"


def explain_page(client, url: str) -> None:  # type: ignore[no-untyped-def]
    """Each distinct query of one request of ``url`` (literals aside): how many, their time,
    and MariaDB's plan of the slowest (the first may be of an empty range)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    shapes: dict[str, list[dict[str, str]]] = {}
    for query in captured.captured_queries:
        shape = re.sub(r"'[^']*'|\b\d+(\.\d+)?\b", "?", query["sql"])
        shapes.setdefault(shape, []).append(query)
    print(f"EXPLAIN of the {len(captured)} queries of {url}, by shape:")
    for shape, queries in shapes.items():
        seconds = sum(float(query["time"]) for query in queries)
        print(f"  {len(queries)}x, {seconds * 1000:.1f} ms: {' '.join(shape.split())[:400]}")
        slowest = max(queries, key=lambda query: float(query["time"]))["sql"]
        if not slowest.lstrip().upper().startswith(("SELECT", "WITH")):
            continue
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + slowest.replace("%", "%%"))
            names = [column[0] for column in cursor.description]
            for row in cursor.fetchall():
                plan = dict(zip(names, row, strict=True))
                print(
                    f"      {plan['table']}: {plan['type']}, key {plan['key']}"
                    f" ({plan['key_len']}), rows {plan['rows']}, {plan['Extra'] or ''}"
                )


if __name__ == "__main__":
    main()
