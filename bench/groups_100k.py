"""Benchmark: the admin's group list on 100,000 groups over 1,000,000 task rows.

    .venv/bin/python bench/groups_100k.py [--rows 1000000] [--runs 5] [--keep] [--explain]

The rows live in a MariaDB database of their own (CELERY_SA_BENCH_MYSQL_URL, default
mysql://root@127.0.0.1:3306; database celery_sa_bench_groups, dropped at the end unless
--keep, which also reuses it when it holds the rows already). Task n (0 to rows - 1) has the
id made of the MD5 of "task-n" written as a UUID and is done rows - n seconds ago (about 11.6
days for 1,000,000); group g (rows / 10 of them) has the id made of "group-g", was saved a
second before its first member was done, and names tasks 10g to 10g + 9, stored as Celery's
DatabaseBackend stores a GroupResult with the JSON serializer (its as_tuple(), encoded).
About 90 % of the groups finished with SUCCESS only, 5 % with one FAILURE, 5 % are still
running: 3 to 7 members SUCCESS, 2 STARTED, the rest PENDING (no row, so the task table
holds about 1.5 % fewer rows than --rows). celery_sa_group_member holds the ten rows
celery_sa's backend writes for each group it saves (group_index 0 to 9 in the header's
order, the group's date_done), except for about 2 % of the groups, spread over all of them,
which have none, as groups saved by Celery's own backend. The fill checks itself: Celery's
GroupResult.restore() of one group of each kind (and of one without members) on db+mysql://
gives back its ten ids, the stored values are byte for byte what Celery encodes, the member
rows are those the backend writes for the restored group, the list shows their sizes and
counts, and each ?progress= filter searched for the group's id lists it or not as its
members' states say.

Each page is requested through Django's test client in this process (server time: queries,
rendering, no network) as a superuser: the group list's first page (50 groups, the admin's
list_per_page), the next page (the link on the first: ?p=2, an offset, as anchors start at
offset 1,000), a search by a whole group id, the middle group's page, the list's first page
with each ?progress= filter (unfinished, failed, finished, unrecorded), the second page of
?progress=unfinished (the link on its first), and the task list's first page on the same
rows. Printed: every run after one warm-up, the median, the median as a share of the task
list's, and PASS or MISS against 300 ms; then the queries of one more request of the group
list's first page with their times (Django records them to the millisecond), and how many
queries the unfinished and failed first pages make and the slowest of them; then, for each
filtered page that misses the target (each one with --explain), MariaDB's EXPLAIN of its
slowest query. About 2.5 minutes. MariaDB only: bench/scratch.py makes MariaDB databases, and
the fill is written for MariaDB's sequence engine.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import os
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import in_scratch_database, setup_django, signed_in_client, timings  # noqa: E402

DATABASE = "celery_sa_bench_groups"
GROUPS = "/admin/celery_sa/groupresult/"
TASKS = "/admin/celery_sa/taskresult/"
SIZE = 10  # members of a group
TARGET_MS = 300.0
# Which groups failed or still run: u, a pseudo-random 0..10006 of the group's number.
FAILED_BELOW, RUNNING_BELOW = 500, 1000
# Which groups have no member rows (saved by Celery's own backend): about 2 %, those whose
# other pseudo-random number, v = g * 4099 mod 10007, is below 200.
UNRECORDED_BELOW = 200
RECORDED = f"MOD(g * 4099, 10007) >= {UNRECORDED_BELOW}"
MEMBERS = "celery_sa_group_member"
FILTERS = ("unfinished", "failed", "finished", "unrecorded")
# A member's state (NULL: PENDING, no row) from n (its task), g (its group), j (its place in
# the group) and u; the same in member_states() below, for the self-check.
STATUS = f"""CASE
    WHEN u < {FAILED_BELOW} THEN IF(j = MOD(g, {SIZE}), 'FAILURE', 'SUCCESS')
    WHEN u < {RUNNING_BELOW} THEN CASE
        WHEN j < 3 + MOD(g, 5) THEN 'SUCCESS' WHEN j < 5 + MOD(g, 5) THEN 'STARTED' END
    ELSE 'SUCCESS' END"""
# What Celery stores as a FAILURE's and a STARTED task's result (JSON).
EXCEPTION = '{"exc_type": "ValueError", "exc_message": ["bad input"], "exc_module": "builtins"}'
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/tasks.py", line 120, in run\n    return step(payload)\n'
    "ValueError: bad input\n"
)
# Django 6.1 writes role="button" before the href of a page link.
PAGE_LINK = re.compile(r'<a [^>]*href="(\?[^"]*)"[^>]*>(\d+)</a>')
CELL = re.compile(r'<td class="field-(size|finished|failed)">([^<]*)</td>')


def uuid_sql(kind: str, number: str) -> str:
    """The id of row ``number`` of ``kind``: the MD5 of "kind-number" as a UUID (8-4-4-4-12,
    the dashes inserted from the right, so that each position is the digest's own)."""
    digest = f"MD5(CONCAT('{kind}-', {number}))"
    return (
        f"INSERT(INSERT(INSERT(INSERT({digest}, 21, 0, '-'), 17, 0, '-'), 13, 0, '-'), 9, 0, '-')"
    )


def uuid_of(kind: str, number: int) -> str:
    digest = hashlib.md5(f"{kind}-{number}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


def members_sql(rows: int) -> str:
    """Every member of every group: n, g, j and its status."""
    return f"""SELECT n, g, j, {STATUS} AS status FROM (
        SELECT seq AS n, seq DIV {SIZE} AS g, MOD(seq, {SIZE}) AS j,
            MOD((seq DIV {SIZE}) * 7907, 10007) AS u
        FROM seq_0_to_{rows - 1}
    ) AS numbered"""


def tasks_sql(rows: int) -> str:
    """The task rows of the members that have one; its parameter: now."""
    done = f"%s - INTERVAL ({rows} - n) SECOND"
    return f"""INSERT INTO celery_taskmeta (id, task_id, status, result, date_done, traceback,
        name, args, kwargs, worker, retries, queue, date_started, date_sent)
    SELECT n + 1, {uuid_sql("task", "n")}, status,
        CASE status WHEN 'SUCCESS' THEN '42' WHEN 'FAILURE' THEN '{EXCEPTION}'
            ELSE CONCAT('{{"pid": ', 1000 + MOD(g, 7), ', "hostname": "celery@w', MOD(g, 7), '"}}')
            END,
        done, IF(status = 'FAILURE', @traceback, NULL),
        ELT(1 + MOD(g, 4), 'app.tasks.resize', 'app.tasks.index', 'app.tasks.notify',
            'app.tasks.export'),
        CONCAT('[', n, ']'), '{{}}', CONCAT('celery@w', MOD(g, 7)), 0, 'celery',
        IF(status = 'STARTED', done, done - INTERVAL 500000 MICROSECOND),
        IF(status = 'STARTED', done, done - INTERVAL 520000 MICROSECOND)
    FROM (SELECT *, {done} AS done FROM ({members_sql(rows)}) AS members) AS dated
    WHERE status IS NOT NULL"""


def groups_sql(rows: int) -> str:
    """The group rows: Celery's JSON of GroupResult.as_tuple(), ((id, None), [((task id,
    None), None), …]), as kombu's json.dumps writes it; its parameter: now."""
    member = f"""CONCAT('[["', {uuid_sql("task", "n")}, '", null], null]')"""
    return f"""INSERT INTO celery_tasksetmeta (id, taskset_id, result, date_done)
    SELECT g + 1, group_id, CONCAT('[["', group_id, '", null], [', members, ']]'),
        %s - INTERVAL ({rows} - g * {SIZE} + 1) SECOND
    FROM (
        SELECT g, {uuid_sql("group", "g")} AS group_id,
            GROUP_CONCAT({member} ORDER BY j SEPARATOR ', ') AS members
        FROM (SELECT seq AS n, seq DIV {SIZE} AS g, MOD(seq, {SIZE}) AS j
              FROM seq_0_to_{rows - 1}) AS numbered
        GROUP BY g
    ) AS grouped"""


def group_members_sql(rows: int) -> str:
    """The member rows celery_sa's backend writes for the groups it saved; its parameter:
    now."""
    return f"""INSERT INTO {MEMBERS} (group_id, task_id, group_index, date_done)
    SELECT {uuid_sql("group", "g")}, {uuid_sql("task", "n")}, j,
        %s - INTERVAL ({rows} - g * {SIZE} + 1) SECOND
    FROM (SELECT seq AS n, seq DIV {SIZE} AS g, MOD(seq, {SIZE}) AS j
          FROM seq_0_to_{rows - 1}) AS numbered
    WHERE {RECORDED}"""


def recorded(g: int) -> bool:
    """Whether group g has member rows, as RECORDED says."""
    return g * 4099 % 10007 >= UNRECORDED_BELOW


def member_states(g: int) -> list[str | None]:
    """Group g's members' states as STATUS makes them (None: PENDING, no row)."""
    u = g * 7907 % 10007
    if u < FAILED_BELOW:
        return ["FAILURE" if j == g % SIZE else "SUCCESS" for j in range(SIZE)]
    if u < RUNNING_BELOW:
        done = 3 + g % 5
        return ["SUCCESS" if j < done else "STARTED" if j < done + 2 else None for j in range(SIZE)]
    return ["SUCCESS"] * SIZE


def listed_by(g: int) -> set[str]:
    """The ?progress= filters that list group g."""
    if not recorded(g):
        return {"unrecorded"}
    states = member_states(g)
    done = all(state in ("SUCCESS", "FAILURE") for state in states)
    return {"finished" if done else "unfinished"} | ({"failed"} if "FAILURE" in states else set())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="task rows, 10 a group")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--keep", action="store_true", help=f"keep {DATABASE} and reuse it when it is full"
    )
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN every filter's slowest query"
    )
    options = parser.parse_args()
    if options.rows < 100 * SIZE or options.rows % SIZE:
        parser.error(f"--rows must be a multiple of {SIZE}, at least {100 * SIZE}")
    in_scratch_database(
        DATABASE, options.keep, lambda: run(options.rows, options.runs, options.explain)
    )


def run(rows: int, runs: int, explain: bool) -> None:
    groups = rows // SIZE
    setup_django()
    prepare(rows)
    client = signed_in_client()
    check(client, groups)
    middle = groups // 2
    unfinished = f"{GROUPS}?progress=unfinished"
    cases = [
        ("group list, page 1", GROUPS),
        ("group list, page 2 (link)", GROUPS + link_on(client, GROUPS, 2)),
        ("group search, whole id", f"{GROUPS}?q={uuid_of('group', middle)}"),
        ("group page", f"{GROUPS}{middle + 1}/change/"),
        *((f"?progress={name}, page 1", f"{GROUPS}?progress={name}") for name in FILTERS),
        ("?progress=unfinished, page 2 (link)", GROUPS + link_on(client, unfinished, 2)),
        ("task list, page 1", TASKS),
    ]
    measured = [
        (what, url, timings(client, url, runs, lambda response: said(client, response)))
        for what, url in cases
    ]
    tasks = statistics.median(measured[-1][2])
    print(f"{runs} runs after a warm-up, {groups:,} groups, server time in ms:")
    for what, _, each in measured:
        median = statistics.median(each)
        mark = "PASS" if median <= TARGET_MS else "MISS"
        print(
            f"  {what:<35} {' '.join(f'{ms:7.1f}' for ms in each)}   median {median:7.1f}"
            f"  {median / tasks:5.2f}x the task list  target {TARGET_MS:.0f}"
            f"  {median / TARGET_MS:5.2f}x  {mark}"
        )
    print_queries(client, GROUPS)
    for name in ("unfinished", "failed"):
        print_slowest(client, f"{GROUPS}?progress={name}")
    for what, url, each in measured:
        if "progress=" in url and (explain or statistics.median(each) > TARGET_MS):
            print_explain(client, what, url)


def prepare(rows: int) -> None:
    """The tables and their rows, unless a kept database has them already."""
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    groups = rows // SIZE
    members = SIZE * sum(map(recorded, range(groups)))
    if {"celery_tasksetmeta", MEMBERS} <= set(connection.introspection.table_names()):
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COUNT(*) FROM ({members_sql(rows)}) AS m WHERE status IS NOT NULL"
            )
            (expected,) = cursor.fetchone()
            cursor.execute(
                "SELECT (SELECT COUNT(*) FROM celery_taskmeta),"
                f" (SELECT COUNT(*) FROM celery_tasksetmeta), (SELECT COUNT(*) FROM {MEMBERS})"
            )
            if cursor.fetchone() == (expected, groups, members):
                print(f"reused {expected:,} task rows, {groups:,} groups, {members:,} members")
                return
    call_command("celery_sa_tables", "create", stdout=open(os.devnull, "w"))
    started = time.monotonic()
    found, written = fill(rows)
    if written != members:
        raise SystemExit(f"wrote {written:,} member rows, not {members:,}")
    print(
        f"filled {found:,} task rows ({rows - found:,} members PENDING, no row),"
        f" {groups:,} groups and {written:,} member rows ({groups - written // SIZE:,} groups"
        f" without, as Celery's own backend saves them) in {time.monotonic() - started:.0f} s"
    )


def fill(rows: int) -> tuple[int, int]:
    """Fill the three tables; the task rows and the member rows written."""
    from django.db import connection

    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with connection.cursor() as cursor:
        for table in ("celery_taskmeta", "celery_tasksetmeta", MEMBERS):
            cursor.execute(f"TRUNCATE TABLE {table}")
        cursor.execute("SET @traceback = %s", [TRACEBACK])
        cursor.execute(tasks_sql(rows), [now])
        found: int = cursor.rowcount
        cursor.execute(groups_sql(rows), [now])
        cursor.execute(group_members_sql(rows), [now])
        written: int = cursor.rowcount
        cursor.execute(f"ALTER SEQUENCE task_id_sequence RESTART WITH {rows + 1}")
        cursor.execute(f"ALTER SEQUENCE taskset_id_sequence RESTART WITH {rows // SIZE + 1}")
        cursor.execute(f"ANALYZE TABLE celery_taskmeta, celery_tasksetmeta, {MEMBERS}")
        cursor.fetchall()
    return found, written


def check(client, groups: int) -> None:  # type: ignore[no-untyped-def]
    """The first group of each kind, and the first without members, as Celery's own backend
    restores it from the same database and as the admin's search and filters find it."""
    from celery import Celery
    from django.conf import settings

    app = Celery("bench", set_as_current=False)
    app.conf.update(result_backend=settings.CELERY_RESULT_BACKEND, result_serializer="json")
    first: dict[str, int] = {}
    for g in range(groups):
        states = member_states(g)
        kind = "one FAILURE" if "FAILURE" in states else "running" if None in states else "done"
        first.setdefault(kind if recorded(g) else f"no members, {kind}", g)
    seen = ", ".join(f"{g} ({kind}: {check_group(app, client, g)})" for kind, g in first.items())
    print(
        f"checked groups {seen}: restored by Celery's GroupResult.restore(), stored as it"
        f" encodes them, their member rows as celery_sa's backend writes them, {SIZE} tasks"
        " each on the list, listed by the filters their states call for"
    )


def check_group(app, client, g: int) -> str:  # type: ignore[no-untyped-def]
    """Group g's ten ids restored, its stored value byte for byte what Celery encodes, its
    member rows, the list's tasks, finished and failed, and the filters that list it; how
    many finished, for Celery and the list, and those filters."""
    from django.db import connection

    group_id = uuid_of("group", g)
    members = [uuid_of("task", SIZE * g + j) for j in range(SIZE)]
    restored = app.GroupResult.restore(group_id)
    if restored is None or [result.id for result in restored.results] != members:
        raise SystemExit(f"Celery restores group {g} as {restored!r}")
    group = app.GroupResult(group_id, [app.AsyncResult(task_id) for task_id in members])
    encoded = app.backend.encode(app.backend.prepare_value(group)).encode()
    with connection.cursor() as cursor:
        cursor.execute("SELECT result FROM celery_tasksetmeta WHERE taskset_id = %s", [group_id])
        stored = bytes(cursor.fetchone()[0])
    if stored != encoded:
        raise SystemExit(f"group {g} stored {stored[:80]!r}, Celery encodes {encoded[:80]!r}")
    check_members(g, restored)
    states = member_states(g)
    finished = sum(state in ("SUCCESS", "FAILURE") for state in states)
    failed = states.count("FAILURE")
    expected = {"size": str(SIZE), "finished": str(finished), "failed": str(failed)}
    cells = dict(CELL.findall(client.get(f"{GROUPS}?q={group_id}").content.decode()))
    if cells != expected:
        raise SystemExit(f"the list shows group {g} as {cells}, not {expected}")
    listed = [
        name
        for name in FILTERS
        if CELL.search(client.get(f"{GROUPS}?progress={name}&q={group_id}").content.decode())
    ]
    if set(listed) != listed_by(g):
        raise SystemExit(f"group {g} is listed by {listed}, not by {sorted(listed_by(g))}")
    return (
        f"{finished} finished, {failed} failed; Celery: {restored.completed_count()}"
        f" successful; listed by {', '.join(listed)}"
    )


def check_members(g: int, restored) -> None:  # type: ignore[no-untyped-def]
    """Group g's member rows: those celery_sa's backend writes for the group Celery restores
    (its task ids in order, at the group's own time), none for a group without members."""
    from django.db import connection

    from celery_sa.backend.members import leaf_ids

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT m.task_id, m.group_index, m.date_done = g.date_done FROM {MEMBERS} m"
            " JOIN celery_tasksetmeta g ON g.taskset_id = m.group_id"
            " WHERE m.group_id = %s ORDER BY m.group_index",
            [restored.id],
        )
        rows = list(cursor.fetchall())
    ids = list(dict.fromkeys(leaf_ids(restored))) if recorded(g) else []
    if rows != [(task_id, index, 1) for index, task_id in enumerate(ids)]:
        raise SystemExit(f"group {g} has the member rows {rows}, not those of {ids}")


def link_on(client, page: str, number: int) -> str:  # type: ignore[no-untyped-def]
    """The link to page ``number`` in the paginator of the list at ``page``."""
    text = client.get(page).content.decode()
    paginator = text[text.index('class="paginator"') :]
    links = {int(label): html.unescape(href) for href, label in PAGE_LINK.findall(paginator)}
    return links[number]


def said(client, response) -> str:  # type: ignore[no-untyped-def]
    """The admin's error message on the page a failed request redirects to (a database
    error on a list is reported on the admin's index)."""
    if response.status_code != 302:
        return ""
    text = client.get(response["Location"]).content.decode()
    errors = re.findall(r'<li class="error">(.*?)</li>', text, re.DOTALL)
    return " ".join(html.unescape(error.strip()) for error in errors)


def captured(client, url: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """The queries of one request of ``url``, each with its time in seconds."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as context:
        client.get(url)
    return context.captured_queries


def ms(query: dict[str, str]) -> float:
    return float(query["time"]) * 1000


def one_line(sql: str, length: int = 150) -> str:
    return " ".join(sql.split())[:length]


def print_queries(client, url: str) -> None:  # type: ignore[no-untyped-def]
    """The queries of one request of ``url``: how many, and each one's time."""
    queries = captured(client, url)
    print(f"{len(queries)} queries for {url}, {sum(map(ms, queries)):.1f} ms in the database:")
    for query in queries:
        print(f"  {ms(query):6.1f} ms  {one_line(query['sql'])}")


def print_slowest(client, url: str) -> None:  # type: ignore[no-untyped-def]
    """How many queries one request of ``url`` makes, and the slowest of them."""
    queries = captured(client, url)
    slowest = max(queries, key=ms)
    print(
        f"{len(queries)} queries for {url}, {sum(map(ms, queries)):.1f} ms in the database,"
        f" the slowest {ms(slowest):.1f} ms:\n  {one_line(slowest['sql'], 300)}"
    )


def print_explain(client, what: str, url: str) -> None:  # type: ignore[no-untyped-def]
    """MariaDB's plan of the slowest query of one request of ``url``."""
    from django.db import connection

    slowest = max(captured(client, url), key=ms)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + slowest["sql"])
        names = [column[0] for column in cursor.description]
        table = [names] + [["NULL" if v is None else str(v) for v in row] for row in cursor]
    widths = [max(len(row[i]) for row in table) for i in range(len(names))]
    print(f"EXPLAIN of the slowest query of {what} ({ms(slowest):.1f} ms):")
    print(f"  {one_line(slowest['sql'], 600)}")
    for row in table:
        print("  " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
