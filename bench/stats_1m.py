"""Benchmark: `manage.py celery_sa_stats` on 1,000,000 rows of MariaDB.

    .venv/bin/python bench/stats_1m.py [--rows 1000000] [--runs 5]

Rows are done one a second up to now (about 11.6 days for 1,000,000), one of 50 task names
and of four states, in a database of their own (CELERY_SA_BENCH_MYSQL_URL, default
mysql://root@127.0.0.1:3306; database celery_sa_bench_purge, dropped at the end). Prints the
median time of the command, as a user runs it, for several windows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.purge_1m import DATABASE, fill  # noqa: E402
from bench.scratch import scratch_database  # noqa: E402

STATES = "ELT(1 + MOD(seq, 4), 'SUCCESS', 'FAILURE', 'RETRY', 'SUCCESS')"
WINDOWS = ("1h", "24h", "7d")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    with scratch_database(DATABASE):
        run(options.rows, options.runs)


def run(rows: int, runs: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("celery_sa_tables", "create", stdout=open(os.devnull, "w"))
    fill(rows, STATES)
    print(f"median of {runs} runs after a warm-up, {rows:,} rows:")
    for window in WINDOWS:
        timings = []
        for attempt in range(runs + 1):
            out = StringIO()
            started = time.perf_counter()
            call_command("celery_sa_stats", "--since", window, stdout=out)
            if attempt:
                timings.append((time.perf_counter() - started) * 1000)
        first_line = out.getvalue().splitlines()[0]
        print(f"  --since {window:<4} {statistics.median(timings):8.1f} ms   {first_line}")


if __name__ == "__main__":
    main()
