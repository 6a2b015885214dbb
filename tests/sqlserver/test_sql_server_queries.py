"""What the admin, the purge and the overview send to SQL Server, statement by statement.

No SQL Server runs here. The result database is a real mssql-django connection (from a
``db+mssql+pyodbc://`` CELERY_RESULT_BACKEND, as a user configures it) whose pyodbc
connection is a stand-in: celery_sa's own functions run unchanged, Django and mssql-django
compile every statement they execute, the stand-in records it (SQL and parameters, as the
compiler wrote them) and answers with the rows the test gives, the way the server would.
Column references are compared without their table's name (``[celery_taskmeta].[id]`` is
``[id]``): each statement reads one table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from django.contrib import admin
from django.core.cache import cache
from django.db import connections
from django.http import HttpRequest
from django.test import RequestFactory, override_settings
from django.urls import resolve, reverse

from celery_sa.admin.decoding import DECODE_LIMIT
from celery_sa.admin.pagination import EstimatedCountPaginator
from celery_sa.admin.tasks import TaskResultAdmin
from celery_sa.db import result_alias
from celery_sa.housekeeping import purge
from celery_sa.models import TaskResult, forget_live_columns, missing_columns
from celery_sa.reports import queries
from celery_sa.reports.runtimes import runtimes

RESULT_BACKEND = (
    "db+mssql+pyodbc://celery:secret@sql.example.com:1433/results"
    "?driver=ODBC+Driver+18+for+SQL+Server"
)
TABLES = ("[celery_taskmeta].", "[celery_tasksetmeta].", "[celery_sa_attempt].")
LIST_COLUMNS = (
    "[id], [task_id], [status], [date_done], [name], [worker], [retries], [queue], [date_started], "
    "[date_sent]"
)
LIST_ORDER = "ORDER BY [date_done] DESC, [id] DESC"
IDS = list(range(1001, 1051))
IN_IDS = f"[id] IN ({', '.join(['%s'] * len(IDS))})"
ATTEMPT_PROBE = "([attempt] = %s AND [task_id] = %s)"
"""The purge's look for the attempt table: a primary-key lookup that finds nothing."""
# The purge's clock, and its cutoff seven days before.
NOW = datetime(2026, 1, 9, 12, 0, tzinfo=UTC)
CUTOFF = datetime(2026, 1, 2, 12, 0)

T = TypeVar("T")
Rows = list[tuple[Any, ...]]
Answer = Rows | int
"""The rows a statement returns, or how many rows it deleted."""
Sent = tuple[str, tuple[Any, ...]] | str
"""A statement and its parameters, or "COMMIT"."""


class Cursor:
    """A pyodbc cursor of the stand-in: the connection's own housekeeping (session options,
    @@TRANCOUNT, the server's clock) is answered here, every other statement with the next
    answer the test gave."""

    HOUSEKEEPING: dict[str, Rows] = {
        "SELECT @@TRANCOUNT": [(0,)],
        "SELECT SYSDATETIME()": [(datetime(2026, 1, 9, 12, 0),)],
        "SET DATEFORMAT ymd; SET DATEFIRST 7": [],
    }

    def __init__(self, server: SQLServerStandIn) -> None:
        self.server = server
        self.rows: Rows = []
        self.rowcount = -1

    def execute(self, sql: str, params: Any = ()) -> Cursor:
        if sql in self.HOUSEKEEPING:
            self.rows = list(self.HOUSEKEEPING[sql])
            return self
        assert self.server.answers, f"the test gave no answer for {sql}"
        answer = self.server.answers.pop(0)
        if isinstance(answer, int):
            self.rows, self.rowcount = [], answer
        else:
            self.rows, self.rowcount = list(answer), len(answer)
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows.pop(0) if self.rows else None

    def fetchmany(self, size: int) -> Rows:
        rows, self.rows = self.rows[:size], self.rows[size:]
        return rows

    def fetchall(self) -> Rows:
        rows, self.rows = self.rows, []
        return rows

    def nextset(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class SQLServerStandIn:
    """What mssql-django uses of a pyodbc connection to SQL Server, recording what it is
    sent and answering with what the test gives."""

    autocommit = True

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.sent: list[Sent] = []

    def run(self, action: Callable[[], T], *answers: Answer) -> tuple[T, list[Sent]]:
        """What ``action`` returns and sends when its statements get ``answers`` in turn."""
        self.answers, self.sent = list(answers), []
        result = action()
        assert not self.answers, f"answers left for statements never sent: {self.answers}"
        return result, self.sent

    def record(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        """A Django execute wrapper: the statement as the compiler wrote it."""
        written = sql
        for table in TABLES:
            written = written.replace(table, "")
        self.sent.append((written, tuple(params or ())))
        return execute(sql, params, many, context)

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        self.sent.append("COMMIT")

    def rollback(self) -> None:
        self.sent.append("ROLLBACK")

    def getinfo(self, kind: int) -> str:
        return "libmsodbcsql-18.5.so.1.1"  # Microsoft's ODBC driver

    def add_output_converter(self, *args: object) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, django_db_blocker: Any) -> Iterator[SQLServerStandIn]:
    """SQL Server 2022 as the result database, through mssql-django and the stand-in; its
    task table has celery_sa's ``date_started`` (the probe for it already answered)."""
    stand_in = SQLServerStandIn()
    with override_settings(CELERY_RESULT_BACKEND=RESULT_BACKEND), django_db_blocker.unblock():
        alias = result_alias()
        connection = connections[alias]
        assert connection.vendor == "microsoft"
        # What mssql-django would ask the server when it first needs it.
        connection.__dict__.update(sql_server_version=2022, to_azure_sql_db=False)
        monkeypatch.setattr(connection, "get_new_connection", lambda params: stand_in)
        connection.ensure_connection()
        with connection.execute_wrapper(stand_in.record):
            forget_live_columns()
            stand_in.run(lambda: missing_columns(alias), [], [])
            cache.clear()  # the filters' choices
            yield stand_in
        cache.clear()
        connection.close()
        del connections[alias]


def as_sent(wall_time: datetime) -> Any:
    """The parameter a ``date_done`` comparison sends for ``wall_time`` (naive, in the zone
    Celery stored it in): whole milliseconds as ISO 8601 text, which SQL Server converts to
    the DATETIME column's own type (see
    :func:`test_a_key_read_from_a_datetime_column_is_compared_as_datetime`), finer times as
    the datetime itself."""
    return (
        wall_time if wall_time.microsecond % 1000 else wall_time.isoformat(timespec="milliseconds")
    )


class Staff:
    """A user with every permission, as the admin's views get one."""

    is_active = True
    is_staff = True

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return True


def list_request(**params: str) -> HttpRequest:
    """A GET of the task list with ``params``."""
    url = reverse("admin:celery_sa_taskresult_changelist")
    request = RequestFactory().get(url, params)
    request.resolver_match = resolve(url)
    request.user = Staff()  # type: ignore[assignment]
    return request


def task_admin() -> TaskResultAdmin:
    model_admin = admin.site.get_model_admin(TaskResult)
    assert isinstance(model_admin, TaskResultAdmin)
    return model_admin


def list_paginator(rows: int | None = None, **params: str) -> EstimatedCountPaginator:
    """The paginator the task list gets for a request with ``params``; ``rows``: the list's
    count, as if already counted (a deep page's statements do not depend on how)."""
    request = list_request(**params)
    model_admin = task_admin()
    queryset = model_admin.get_queryset(request)
    paginator = model_admin.get_paginator(request, queryset, model_admin.list_per_page)
    if rows is not None:
        paginator.count = rows
    return paginator


# -- the admin's list -----------------------------------------------------------------


def test_the_task_table_is_probed_for_celery_sas_columns_once(server: SQLServerStandIn) -> None:
    forget_live_columns()
    missing, sent = server.run(lambda: missing_columns(result_alias()), [], [])
    assert missing == []
    assert sent == [
        ("SELECT [date_started] AS [date_started] FROM [celery_taskmeta] WHERE [id] = %s", (-1,)),
        "COMMIT",
        ("SELECT [date_sent] AS [date_sent] FROM [celery_taskmeta] WHERE [id] = %s", (-1,)),
        "COMMIT",
    ]
    assert server.run(lambda: missing_columns(result_alias()))[1] == []


def test_the_first_page_is_read_with_top(server: SQLServerStandIn) -> None:
    paginator = list_paginator(rows=100_000)
    _, sent = server.run(lambda: paginator.page(1), [])
    assert sent == [(f"SELECT TOP 50 {LIST_COLUMNS} FROM [celery_taskmeta] {LIST_ORDER}", ())]


def test_an_unfiltered_list_is_counted_by_the_table_statistics(server: SQLServerStandIn) -> None:
    paginator = list_paginator()
    count, sent = server.run(lambda: paginator.count, [(1_234_567,)])
    assert (count, paginator.estimated) == (1_234_567, True)
    (statement,) = sent
    assert isinstance(statement, tuple)
    sql, params = statement
    assert "COUNT" not in sql
    assert "sys." in sql
    assert "celery_taskmeta" in str(params)


def test_a_deep_page_without_an_anchor_reads_its_ids_by_offset_first(
    server: SQLServerStandIn,
) -> None:
    paginator = list_paginator(rows=100_000, p="30")
    _, sent = server.run(lambda: paginator.page(30), [(i,) for i in IDS], [])
    assert sent == [
        (
            f"SELECT [id] AS [pk] FROM [celery_taskmeta] {LIST_ORDER}  "
            "OFFSET 1450 ROWS FETCH FIRST 50 ROWS ONLY",
            (),
        ),
        (
            f"SELECT {LIST_COLUMNS} FROM [celery_taskmeta] WHERE {IN_IDS} {LIST_ORDER} "
            "OFFSET 0 ROWS",
            tuple(IDS),
        ),
    ]


ANCHOR_ROW = [(datetime(2026, 1, 2, 3, 4, 5, 3000), 5000)]
ANCHOR_READ = (
    "SELECT TOP 1 [date_done] AS [date_done], [id] AS [id] FROM [celery_taskmeta] "
    "WHERE [id] = %s ORDER BY [id] ASC",
    (5000,),
)


def test_a_page_after_an_anchor_is_found_from_the_anchor_row(server: SQLServerStandIn) -> None:
    paginator = list_paginator(rows=100_000, p="31", _anchor="30.5000")
    _, sent = server.run(lambda: paginator.page(31), ANCHOR_ROW, [(i,) for i in IDS], [])
    key = as_sent(datetime(2026, 1, 2, 3, 4, 5, 3000))
    assert sent == [
        ANCHOR_READ,
        (
            "SELECT [id] AS [pk] FROM [celery_taskmeta] "
            "WHERE (([date_done] <= %s OR [date_done] IS NULL) AND ([date_done] < %s "
            "OR [date_done] IS NULL OR ([date_done] = %s AND [id] < %s) "
            "OR ([date_done] = %s AND [id] = %s))) "
            f"{LIST_ORDER}  OFFSET 50 ROWS FETCH FIRST 50 ROWS ONLY",
            (key, key, key, 5000, key, 5000),
        ),
        (
            f"SELECT {LIST_COLUMNS} FROM [celery_taskmeta] WHERE {IN_IDS} {LIST_ORDER} "
            "OFFSET 0 ROWS",
            tuple(IDS),
        ),
    ]


def test_a_page_before_an_anchor_walks_back_from_the_anchor_row(
    server: SQLServerStandIn,
) -> None:
    paginator = list_paginator(rows=100_000, p="29", _anchor="30.5000")
    _, sent = server.run(lambda: paginator.page(29), ANCHOR_ROW, [(i,) for i in IDS], [])
    key = as_sent(datetime(2026, 1, 2, 3, 4, 5, 3000))
    assert sent[:2] == [
        ANCHOR_READ,
        (
            "SELECT TOP 50 [id] AS [pk] FROM [celery_taskmeta] WHERE ([date_done] >= %s "
            "AND ([date_done] > %s OR ([date_done] = %s AND [id] > %s))) "
            "ORDER BY [date_done] ASC, [id] ASC",
            (key, key, key, 5000),
        ),
    ]


def test_a_page_near_the_end_of_an_estimated_list_is_read_from_the_end(
    server: SQLServerStandIn,
) -> None:
    paginator = list_paginator(rows=100_000, p="1990")
    paginator.estimated = True
    _, sent = server.run(lambda: paginator.page(1990), [(i,) for i in IDS], [])
    assert sent[0] == (
        "SELECT [id] AS [pk] FROM [celery_taskmeta] ORDER BY [date_done] ASC, [id] ASC  "
        "OFFSET 500 ROWS FETCH FIRST 50 ROWS ONLY",
        (),
    )


@override_settings(CELERY_TIMEZONE="Europe/Paris")
def test_a_filtered_list_counts_to_a_cap_within_date_bounds_in_celerys_zone(
    server: SQLServerStandIn,
) -> None:
    request = list_request(
        status="FAILURE",
        date_done__gte="2026-01-01 00:00:00+00:00",
        date_done__lt="2026-01-08 00:00:00+00:00",
    )
    changelist, sent = server.run(
        lambda: task_admin().get_changelist_instance(request),
        [("app.tasks.add",)],
        [("celery@host",)],
        [("celery",)],
        [(3,)],
    )
    choices = "SELECT TOP 10000 [{0}] AS [{0}] FROM [celery_taskmeta] ORDER BY [date_done] DESC"
    assert sent == [
        (choices.format("name"), ()),
        (choices.format("worker"), ()),
        (choices.format("queue"), ()),
        (
            "SELECT COUNT_BIG(*) FROM (SELECT TOP 1001 [id] AS [pk] FROM [celery_taskmeta] "
            "WHERE ([status] = %s AND [date_done] >= %s AND [date_done] < %s)) subquery",
            ("FAILURE", as_sent(datetime(2026, 1, 1, 1, 0)), as_sent(datetime(2026, 1, 8, 1, 0))),
        ),
    ]
    assert changelist.result_count == 3


def test_a_search_tries_the_task_id_then_the_name_then_a_name_prefix(
    server: SQLServerStandIn,
) -> None:
    request = list_request(q="app.tasks")
    queryset = task_admin().get_queryset(request)
    _, sent = server.run(
        lambda: list(task_admin().get_search_results(request, queryset, "app.tasks")[0]),
        [],
        [],
        [],
    )
    exists = "SELECT TOP 1 %s AS [a] FROM [celery_taskmeta] WHERE [{}] = %s"
    assert sent == [
        (exists.format("task_id"), (1, "app.tasks")),
        (exists.format("name"), (1, "app.tasks")),
        (
            f"SELECT {LIST_COLUMNS} FROM [celery_taskmeta] WHERE [name] LIKE %s ESCAPE '\\' "
            f"{LIST_ORDER} OFFSET 0 ROWS",
            ("app.tasks%",),
        ),
    ]


def test_a_task_page_reads_each_values_size_in_bytes(server: SQLServerStandIn) -> None:
    url = reverse("admin:celery_sa_taskresult_change", args=[5000])
    request = RequestFactory().get(url)
    request.resolver_match = resolve(url)
    _, sent = server.run(lambda: task_admin().get_object(request, "5000"), [])
    values = ("result", "args", "kwargs", "children", "stamps")
    heads = ", ".join(f"SUBSTRING([{value}], %s, %s) AS [{value}_head]" for value in values)
    sizes = ", ".join(f"DATALENGTH([{value}]) AS [{value}_size]" for value in values)
    assert sent == [
        (
            "SELECT TOP 21 [id], [task_id], [status], [date_done], [traceback], [name], "
            f"[worker], [retries], [queue], [date_started], [date_sent], {heads}, {sizes} "
            "FROM [celery_taskmeta] WHERE [id] = %s",
            (*(1, DECODE_LIMIT + 1) * len(values), 5000),
        )
    ]


# -- the purge ------------------------------------------------------------------------


def test_an_age_purge_deletes_ranges_of_ids_a_transaction_each(server: SQLServerStandIn) -> None:
    options = purge.PurgeOptions.parse("7d", groups=False, batch_size=1000, jobs=1)
    result, sent = server.run(
        lambda: purge.purge(options, now=NOW),
        [],  # the attempt table is there
        [(2500,)],  # the highest expired id
        [(1,)],  # the lowest id
        [("t-1",), ("t-2",)],  # the batch's task ids
        3,  # their attempts
        1000,
        [(1001,)],
        [],
        990,
        [(2001,)],
        [],
        480,
        [(None,)],
        [(7,)],  # rows without a date_done, left alone
    )
    batch = "[date_done] < %s AND [id] >= %s AND [id] <= %s"
    task_ids = f"SELECT [task_id] AS [task_id] FROM [celery_taskmeta] WHERE ({batch})"
    delete = f"SET NOCOUNT OFF; DELETE FROM [celery_taskmeta] WHERE ({batch})"
    after = "SELECT MIN([id]) AS [lowest] FROM [celery_taskmeta] WHERE [id] > %s"
    cutoff = as_sent(CUTOFF)
    assert sent == [
        (f"SELECT TOP 1 %s AS [a] FROM [celery_sa_attempt] WHERE {ATTEMPT_PROBE}", (1, -1, "")),
        "COMMIT",
        ("SELECT MAX([id]) AS [highest] FROM [celery_taskmeta] WHERE [date_done] < %s", (cutoff,)),
        ("SELECT MIN([id]) AS [lowest] FROM [celery_taskmeta]", ()),
        (task_ids, (cutoff, 1, 1000)),
        (
            "SET NOCOUNT OFF; DELETE FROM [celery_sa_attempt] WHERE [task_id] IN (%s, %s)",
            ("t-1", "t-2"),
        ),
        (delete, (cutoff, 1, 1000)),
        "COMMIT",
        (after, (1000,)),
        (task_ids, (cutoff, 1001, 2000)),
        (delete, (cutoff, 1001, 2000)),
        "COMMIT",
        (after, (2000,)),
        (task_ids, (cutoff, 2001, 2500)),
        (delete, (cutoff, 2001, 2500)),
        "COMMIT",
        (after, (2500,)),
        (
            "SELECT COUNT_BIG(*) AS [__count] FROM [celery_taskmeta] WHERE [date_done] IS NULL",
            (),
        ),
    ]
    assert (result.tasks, result.attempts, result.batches, result.undated_kept) == (2470, 3, 3, 7)


def test_a_status_purge_deletes_ranges_of_its_index_a_transaction_each(
    server: SQLServerStandIn,
) -> None:
    options = purge.PurgeOptions.parse("7d", statuses="FAILURE", batch_size=100, jobs=1)
    first, last = datetime(2025, 12, 1, 8, 0), datetime(2025, 12, 2, 8, 0)
    result, sent = server.run(
        lambda: purge.purge(options, now=NOW),
        [],  # the attempt table is there
        [(first, 150)],  # the 100th row along (status, date_done)
        [],  # the batch's task ids: none has attempts
        100,
        [],  # fewer than 100 rows after it
        [(last, 170)],  # the last of them
        [("t-1",)],
        1,
        20,
        [],
        [],  # none left
        [(0,)],
    )
    expired = "[date_done] < %s AND [status] IN (%s)"
    up_to = (
        "([date_done] <= %s OR [date_done] IS NULL) AND ([date_done] < %s OR [date_done] IS NULL "
        "OR ([date_done] = %s AND [id] < %s) OR ([date_done] = %s AND [id] = %s))"
    )
    after = "[date_done] >= %s AND ([date_done] > %s OR ([date_done] = %s AND [id] > %s))"
    keys = "[date_done] AS [date_done], [id] AS [id] FROM [celery_taskmeta]"
    ahead = "ORDER BY 1 ASC, 2 ASC  OFFSET 99 ROWS FETCH FIRST 1 ROWS ONLY"
    backwards = "ORDER BY 1 DESC, 2 DESC"
    delete = "SET NOCOUNT OFF; DELETE FROM [celery_taskmeta]"
    cutoff, at_first, at_last = as_sent(CUTOFF), as_sent(first), as_sent(last)
    past_first = (cutoff, "FAILURE", at_first, at_first, at_first, 150)
    past_last = (cutoff, "FAILURE", at_last, at_last, at_last, 170)
    first_batch = (cutoff, "FAILURE", at_first, at_first, at_first, 150, at_first, 150)
    last_batch = (*past_first, at_last, at_last, at_last, 170, at_last, 170)
    task_ids = "SELECT [task_id] AS [task_id] FROM [celery_taskmeta]"
    assert sent == [
        (f"SELECT TOP 1 %s AS [a] FROM [celery_sa_attempt] WHERE {ATTEMPT_PROBE}", (1, -1, "")),
        "COMMIT",
        (f"SELECT {keys} WHERE ({expired}) {ahead}", (cutoff, "FAILURE")),
        (f"{task_ids} WHERE ({expired} AND {up_to})", first_batch),
        (f"{delete} WHERE ({expired} AND {up_to})", first_batch),
        "COMMIT",
        (f"SELECT {keys} WHERE ({expired} AND {after}) {ahead}", past_first),
        (f"SELECT TOP 1 {keys} WHERE ({expired} AND {after}) {backwards}", past_first),
        (f"{task_ids} WHERE ({expired} AND {after} AND {up_to})", last_batch),
        (
            "SET NOCOUNT OFF; DELETE FROM [celery_sa_attempt] WHERE [task_id] IN (%s)",
            ("t-1",),
        ),
        (f"{delete} WHERE ({expired} AND {after} AND {up_to})", last_batch),
        "COMMIT",
        (f"SELECT {keys} WHERE ({expired} AND {after}) {ahead}", past_last),
        (f"SELECT TOP 1 {keys} WHERE ({expired} AND {after}) {backwards}", past_last),
        (
            "SELECT COUNT_BIG(*) AS [__count] FROM [celery_taskmeta] "
            "WHERE ([date_done] IS NULL AND [status] IN (%s))",
            ("FAILURE",),
        ),
    ]
    assert (result.tasks, result.attempts, result.batches) == (120, 1, 2)


def test_a_key_read_from_a_datetime_column_is_compared_as_datetime(
    server: SQLServerStandIn,
) -> None:
    options = purge.PurgeOptions.parse("7d", statuses="FAILURE", batch_size=100, jobs=1)
    stream = purge.streams(options, NOW - timedelta(days=7))[0]
    # DATETIME counts 300ths of a second: a row stored at .0033333 reads back as .003.
    stored = datetime(2025, 12, 2, 8, 0, 0, 3000)
    deleted, sent = server.run(
        lambda: next(iter(purge.delete_in_batches(stream, 100))), [], [(stored, 170)], 20
    )
    assert deleted == (20, 0)  # rows, and attempts (none: a stream without them)
    _ahead, _last, delete, _commit = sent
    assert isinstance(delete, tuple)
    keys = [delete[1][i] for i in (2, 3, 4, 6)]
    assert [str(key).replace("T", " ") for key in keys] == ["2025-12-02 08:00:00.003"] * 4


def test_a_dry_run_counts_each_stream(server: SQLServerStandIn) -> None:
    options = purge.PurgeOptions.parse("7d", statuses="FAILURE,RETRY", undated=True)
    result, sent = server.run(
        lambda: purge.count(options, now=NOW),
        [],  # the attempt table is there
        [(3,)],
        [(2,)],  # attempts of those 3 tasks
        [(4,)],
        [(0,)],
        [(5,)],
        [(1,)],
    )
    count = "SELECT COUNT_BIG(*) AS [__count] FROM [celery_taskmeta] WHERE ({})"
    attempts = (
        "SELECT COUNT_BIG(*) AS [__count] FROM [celery_sa_attempt] WHERE [task_id] IN "
        "(SELECT [U0].[task_id] AS [task_id] FROM [celery_taskmeta] [U0] WHERE ({}))"
    )
    expired = "[date_done] < %s AND [status] IN (%s, %s) AND [status] = %s"
    undated = "[date_done] IS NULL AND [status] IN (%s, %s)"
    cutoff = as_sent(CUTOFF)
    failure, retry = (cutoff, "FAILURE", "RETRY", "FAILURE"), (cutoff, "FAILURE", "RETRY", "RETRY")
    assert alias_unquoted(sent) == alias_unquoted(
        [
            (f"SELECT TOP 1 %s AS [a] FROM [celery_sa_attempt] WHERE {ATTEMPT_PROBE}", (1, -1, "")),
            "COMMIT",
            (count.format(expired), failure),
            (attempts.format(expired.replace("[", "[U0].[")), failure),
            (count.format(expired), retry),
            (attempts.format(expired.replace("[", "[U0].[")), retry),
            (count.format(undated), ("FAILURE", "RETRY")),
            (attempts.format(undated.replace("[", "[U0].[")), ("FAILURE", "RETRY")),
        ]
    )
    assert (result.tasks, result.undated, result.attempts) == (12, 5, 3)


def alias_unquoted(sent: list[Sent]) -> list[Sent]:
    """The statements with the subquery's alias unquoted: Django before 6.1 writes it so."""
    return [
        (item[0].replace("[U0]", "U0"), item[1]) if isinstance(item, tuple) else item
        for item in sent
    ]


def test_an_undated_purge_deletes_ranges_of_ids(server: SQLServerStandIn) -> None:
    options = purge.PurgeOptions.parse("7d", undated=True, batch_size=100)
    (stream,) = [s for s in purge.streams(options, NOW - timedelta(days=7)) if s.undated]
    deleted, sent = server.run(
        lambda: list(purge.delete_in_batches(stream, 100)), [(300,)], 100, [], [(340,)], 40, [], []
    )
    undated = "SELECT {}[id] AS [id] FROM [celery_taskmeta] WHERE {} ORDER BY 1 {}"
    ahead = "ASC  OFFSET 99 ROWS FETCH FIRST 1 ROWS ONLY"
    after = "([date_done] IS NULL AND [id] >= %s AND [id] > %s)"
    up_to = "[id] <= %s AND ([id] < %s OR [id] = %s)"
    delete = "SET NOCOUNT OFF; DELETE FROM [celery_taskmeta] WHERE ([date_done] IS NULL AND {})"
    assert sent == [
        (undated.format("", "[date_done] IS NULL", ahead), ()),
        (delete.format(up_to), (300, 300, 300)),
        "COMMIT",
        (undated.format("", after, ahead), (300, 300)),
        (undated.format("TOP 1 ", after, "DESC"), (300, 300)),
        (delete.format(f"[id] >= %s AND [id] > %s AND {up_to}"), (300, 300, 340, 340, 340)),
        "COMMIT",
        (undated.format("", after, ahead), (340, 340)),
        (undated.format("TOP 1 ", after, "DESC"), (340, 340)),
    ]
    assert deleted == [(100, 0), (40, 0)]


# -- the overview ---------------------------------------------------------------------

SINCE = datetime(2026, 1, 9, 11, 0, tzinfo=UTC)
MIDDLE = datetime(2026, 1, 9, 11, 30, tzinfo=UTC)
UNTIL = datetime(2026, 1, 9, 12, 0, tzinfo=UTC)
WINDOW = "[date_done] >= %s AND [date_done] < %s"


def window_params(since: datetime = SINCE, until: datetime = UNTIL) -> tuple[Any, ...]:
    return (as_sent(since.replace(tzinfo=None)), as_sent(until.replace(tzinfo=None)))


def test_a_columns_values_are_read_with_a_plain_distinct(server: SQLServerStandIn) -> None:
    values, sent = server.run(lambda: queries.distinct("status"), [("FAILURE",), ("SUCCESS",)], [])
    assert sent == [
        ("SELECT DISTINCT [status] FROM [celery_taskmeta] WHERE [status] IS NOT NULL", ()),
        ("SELECT TOP 1 %s AS [a] FROM [celery_taskmeta] WHERE [status] IS NULL", (1,)),
    ]
    assert values == ["FAILURE", "SUCCESS"]


def test_buckets_are_counted_in_one_union_all_per_kind_of_count(
    server: SQLServerStandIn,
) -> None:
    ranges = [queries.done_between(SINCE, MIDDLE), queries.done_between(MIDDLE, UNTIL)]
    counts, sent = server.run(
        lambda: queries.per_status_each(ranges, ["SUCCESS", "FAILURE"]),
        [(0, "FAILURE", 2), (1, "FAILURE", 1)],
        [(0, 10), (1, 20)],
    )
    per_status = (
        "SELECT %s AS [range], [status] AS [status], COUNT_BIG(*) AS [rows] "
        f"FROM [celery_taskmeta] WHERE ({WINDOW} AND [status] IN (%s)) GROUP BY [status]"
    )
    total = f"SELECT %s AS [range], COUNT_BIG(*) AS [rows] FROM [celery_taskmeta] WHERE ({WINDOW})"
    first, second = window_params(SINCE, MIDDLE), window_params(MIDDLE, UNTIL)
    assert sent == [
        (
            f"{per_status} UNION ALL {per_status}",
            (0, *first, "FAILURE", 1, *second, "FAILURE"),
        ),
        (f"{total} UNION ALL {total}", (0, *first, 1, *second)),
    ]
    assert counts == [{"SUCCESS": 8, "FAILURE": 2}, {"SUCCESS": 19, "FAILURE": 1}]


def test_failing_names_are_grouped_then_their_newest_failure_read(
    server: SQLServerStandIn,
) -> None:
    newest = datetime(2026, 1, 9, 11, 45)
    failing, sent = server.run(
        lambda: queries.failing_names(SINCE, UNTIL, limit=10),
        [("app.tasks.add", 3, newest)],
        [("app.tasks.add", 10)],
        [("FAILURE",), ("STARTED",)],
        [],
        [("app.tasks.add", 1)],
        [(7, "app.tasks.add", "t-7", newest, "Traceback …\nValueError: no")],
    )
    window = window_params()
    totals = (
        "SELECT [name] AS [name], COUNT_BIG(*) AS [rows] FROM [celery_taskmeta] "
        "WHERE ({}) GROUP BY [name]"
    )
    assert sent == [
        (
            "SELECT [name] AS [name], COUNT_BIG(*) AS [rows], MAX([date_done]) AS [newest] "
            f"FROM [celery_taskmeta] WHERE ({WINDOW} AND [status] = %s) GROUP BY [name]",
            (*window, "FAILURE"),
        ),
        (totals.format(f"{WINDOW} AND [name] IN (%s)"), (*window, "app.tasks.add")),
        ("SELECT DISTINCT [status] FROM [celery_taskmeta] WHERE [status] IS NOT NULL", ()),
        ("SELECT TOP 1 %s AS [a] FROM [celery_taskmeta] WHERE [status] IS NULL", (1,)),
        (
            totals.format(f"{WINDOW} AND [status] IN (%s) AND [name] IN (%s)"),
            (*window, "STARTED", "app.tasks.add"),
        ),
        (
            "SELECT [id] AS [pk], [name] AS [name], [task_id] AS [task_id], "
            "[date_done] AS [date_done], RIGHT([traceback], %s) AS [tail] "
            f"FROM [celery_taskmeta] WHERE ({WINDOW} AND [name] IN (%s) AND [date_done] = %s "
            "AND [status] = %s) ORDER BY [id] ASC OFFSET 0 ROWS",
            (500, *window, "app.tasks.add", as_sent(newest), "FAILURE"),
        ),
    ]
    assert [(f.name, f.failures, f.total) for f in failing] == [("app.tasks.add", 3, 9)]
    assert failing[0].newest is not None
    assert failing[0].newest.exception == "ValueError: no"


def test_unfinished_states_are_grouped_then_their_oldest_row_read(
    server: SQLServerStandIn,
) -> None:
    oldest = datetime(2026, 1, 8, 9, 0)
    found, sent = server.run(queries.unfinished, [("STARTED", 2, oldest)], [(9, "t-9")])
    assert sent == [
        (
            "SELECT [status] AS [status], COUNT_BIG(*) AS [rows], MIN([date_done]) AS [oldest] "
            "FROM [celery_taskmeta] WHERE [status] IN (%s, %s, %s, %s) GROUP BY [status]",
            ("PENDING", "RECEIVED", "STARTED", "RETRY"),
        ),
        (
            "SELECT TOP 1 [id] AS [pk], [task_id] AS [task_id] FROM [celery_taskmeta] "
            "WHERE ([date_done] = %s AND [status] = %s) ORDER BY [id] ASC",
            (as_sent(oldest), "STARTED"),
        ),
    ]
    assert [(u.status, u.count, u.oldest_pk) for u in found] == [("STARTED", 2, 9)]


def test_runtimes_are_subtracted_in_sql_over_the_newest_rows(server: SQLServerStandIn) -> None:
    found, sent = server.run(
        lambda: runtimes(queries.done_between(SINCE, UNTIL)),
        [("app.tasks.add", "SUCCESS", 1_500_000)],
    )
    done, started = "CAST([date_done] AS datetimeoffset)", "CAST([date_started] AS datetimeoffset)"
    assert sent == [
        (
            "SELECT TOP 5000 [name] AS [name], [status] AS [status], "
            f"CAST(DATEDIFF(second, {started}, {done}) AS bigint) * 1000000 "
            f"+ DATEPART(microsecond, {done}) - DATEPART(microsecond, {started}) AS [took] "
            f"FROM [celery_taskmeta] WHERE ({WINDOW}) ORDER BY [date_done] DESC",
            window_params(),
        )
    ]
    assert [(r.name, r.seconds) for r in found.by_name] == [("app.tasks.add", [1.5])]
