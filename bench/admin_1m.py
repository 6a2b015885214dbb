"""Benchmark: celery_sa's admin against django-celery-results' admin, 1,000,000 rows each.

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/admin_1m.py [--rows 1000000] [--runs 5]

Both tables live in one MariaDB database (CELERY_SA_BENCH_MYSQL_URL, default
mysql://root@127.0.0.1:3306; database celery_sa_bench_admin, dropped at the end) and are
filled by MariaDB's sequence engine with the same rows. Each view is requested through
Django's test client in this process (server time: query, rendering, no network); the
median of the runs after one warm-up is printed, with django-celery-results' time divided
by celery_sa's.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import scratch_database, timings  # noqa: E402

DATABASE = "celery_sa_bench_admin"
NAMES = 50
WORKERS = 5


def fill_statements(rows: int) -> dict[str, str]:
    """The same rows for both tables: id n, task id bench-n, one of four states, one of 50
    names, one of five workers, done n seconds before now."""
    common = (
        "seq, CONCAT('bench-', seq), ELT(1 + MOD(seq, 4), 'SUCCESS', 'FAILURE', 'RETRY', 'STARTED')"
    )
    name = f"CONCAT('app.tasks.t', MOD(seq, {NAMES}))"
    worker = f"CONCAT('celery@w', MOD(seq, {WORKERS}))"
    done = "NOW() - INTERVAL seq SECOND"
    return {
        "celery_taskmeta": (
            "INSERT INTO celery_taskmeta (id, task_id, status, result, date_done, traceback,"
            " name, args, kwargs, worker, retries, queue)"
            f" SELECT {common}, '42', {done}, NULL, {name}, '[1, 2]', '{{}}', {worker}, 0,"
            f" ELT(1 + MOD(seq, 3), 'celery', 'priority', 'bulk') FROM seq_1_to_{rows}"
        ),
        "django_celery_results_taskresult": (
            "INSERT INTO django_celery_results_taskresult (id, task_id, status, content_type,"
            " content_encoding, result, date_done, date_created, traceback, meta, task_args,"
            " task_kwargs, task_name, worker, periodic_task_name, date_started)"
            f" SELECT {common}, 'application/json', 'utf-8', '42', {done}, {done}, NULL,"
            f" '{{}}', '[1, 2]', '{{}}', {name}, {worker}, NULL, NULL FROM seq_1_to_{rows}"
        ),
    }


CASES: list[tuple[str, str, str | None]] = [
    # (what, celery_sa's query, django-celery-results' query)
    ("unfiltered list", "", ""),
    ("filter by status", "status=FAILURE", "status__exact=FAILURE"),
    ("filter by name", "name=app.tasks.t7", "task_name__exact=app.tasks.t7"),
    ("filter by worker", "worker=celery%40w1", "worker__exact=celery%40w1"),
    # django-celery-results has no queue column.
    ("filter by queue", "queue=priority", None),
    ("filter by date (7 days)", "DATE7", "DATE7"),
    ("search a task id", "q=bench-500000", "q=bench-500000"),
    # Reached as the admin reaches it: a link on the page before (with its anchor).
    ("page 5,000 (link)", "LINK:p=BEFORE:DEEP", "LINK:p=BEFORE:DEEP"),
    ("last page (link on page 1)", "LINK::LAST", "LINK::LAST"),
    # A page number typed into the address: no anchor, the index walked to the offset.
    ("page 5,000 (typed in)", "p=DEEP", "p=DEEP"),
    # celery_sa shows 50 rows a page, django-celery-results 100: the same offset too.
    ("offset 499,950 (typed in)", "p=DEEPER", "p=DEEP"),
]
PAGE_LINK = re.compile(r'<a href="(\?[^"]*)"[^>]*>(\d+)</a>')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    os.environ["CELERY_SA_BENCH_WITH_DJANGO_CELERY_RESULTS"] = "1"
    with scratch_database(DATABASE):
        run(options.rows, options.runs)


def run(rows: int, runs: int) -> None:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    quiet = open(os.devnull, "w")
    call_command("migrate", verbosity=0)
    call_command("celery_sa_tables", "create", stdout=quiet)
    started = time.monotonic()
    with connection.cursor() as cursor:
        for table, sql in fill_statements(rows).items():
            cursor.execute(sql)
            cursor.execute(f"ANALYZE TABLE {table}")
    print(f"filled {rows:,} rows in each table in {time.monotonic() - started:.0f} s")
    client = Client()
    client.force_login(User.objects.create_superuser("bench", password="bench"))
    # The bounds DateFieldListFilter's "Past 7 days" link carries: aware midnights.
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    week, tomorrow = today - timezone.timedelta(days=7), today + timezone.timedelta(days=1)
    date7 = urlencode({"date_done__gte": str(week), "date_done__lt": str(tomorrow)})
    deep = min(5000, rows // 200)
    deeper = min(10000, rows // 100)
    middle = rows // 2
    bases = {
        "celery_sa": "/admin/celery_sa/taskresult/",
        "django-celery-results": "/admin/django_celery_results/taskresult/",
    }
    # DEEPER before DEEP: the one name contains the other.
    values = {"DATE7": date7, "DEEPER": str(deeper), "DEEP": str(deep), "BEFORE": str(deep - 1)}

    def url(base: str, query: str) -> str:
        for key, value in values.items():
            query = query.replace(key, value)
        if query.startswith("LINK:"):
            _, on, to = query.split(":")
            return base + link_on(client, f"{base}?{on}", to)
        return f"{base}?{query}"

    cases = [
        (
            what,
            [
                url(bases["celery_sa"], ours),
                url(bases["django-celery-results"], theirs) if theirs is not None else None,
            ],
        )
        for what, ours, theirs in CASES
    ]
    cases.append(
        (
            "task page",
            [
                f"{bases['celery_sa']}{middle}/change/",
                f"{bases['django-celery-results']}{middle}/change/",
            ],
        )
    )
    print(f"median of {runs} runs after a warm-up, server time per request:")
    print(f"  {'view':<26} {'celery_sa':>10} {'django-celery-results':>22} {'ratio':>8}")
    for what, (our_url, their_url) in cases:
        ours = median_ms(client, our_url, runs)
        if their_url is None:
            print(f"  {what:<26} {ours:>8.1f} ms {'n/a':>22}")
            continue
        theirs = median_ms(client, their_url, runs)
        print(f"  {what:<26} {ours:>8.1f} ms {theirs:>19.1f} ms {theirs / ours:>7.1f}x")


def link_on(client, page: str, label: str) -> str:  # type: ignore[no-untyped-def]
    """The page link numbered ``label`` ("LAST": the highest) on the list at ``page``."""
    text = client.get(page).content.decode()
    paginator = text[text.index('class="paginator"') :]
    links = {int(number): html.unescape(href) for href, number in PAGE_LINK.findall(paginator)}
    return links[max(links) if label == "LAST" else int(label)]


def median_ms(client, url: str, runs: int) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(timings(client, url, runs))


if __name__ == "__main__":
    main()
