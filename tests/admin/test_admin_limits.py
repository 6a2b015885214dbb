"""The admin's limits (docs/guides/admin.md, "Limits"): only its own filters, values decoded
up to the decode limit, bounded exports and actions, re-run of registered tasks only and only
after a confirmation page."""

from __future__ import annotations

import csv
import io
import json
import re
import tracemalloc
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from celery import Celery
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connections
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from celery_sa.models import TaskResult
from tests.support.databases import ResultDB
from tests.support.rows import insert_rows, row

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
CHANGELIST = "admin:celery_sa_taskresult_changelist"
MB = 1024 * 1024


@pytest.fixture
def viewer(client: Client) -> Client:
    """A staff user who may only view task and group results."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    for codename in ("view_taskresult", "view_groupresult"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def selected(**filters: Any) -> list[int]:
    return list(TaskResult.objects.filter(**filters).values_list("pk", flat=True))


def export(client: Client, pks: list[int]) -> Any:
    return client.post(reverse(CHANGELIST), {"action": "export_csv", "_selected_action": pks})


def exported_rows(response: Any) -> list[dict[str, str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# -- only the list's own filters ------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"traceback__regex": "^(a+)+$"},
        {"kwargs__contains": "x"},
        {"result__icontains": "x"},
        {"id__in": "1,2"},
        {"status__regex": "S.*"},
    ],
)
def test_the_task_list_answers_400_to_a_lookup_it_does_not_offer(
    embedded_result_db: ResultDB, viewer: Client, query: dict[str, str]
) -> None:
    insert_rows(row("a" * 26, traceback="a" * 25 + "!"))
    assert viewer.get(reverse(CHANGELIST), query).status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        {"status": "SUCCESS"},
        {"name": "app.tasks.job"},
        {"worker": "w1"},
        {"queue": "celery"},
        {"date_done__gte": "2026-01-01 00:00+00:00", "date_done__lt": "2026-02-01 00:00+00:00"},
        {"date_done__isnull": "False"},
        {"q": "app.tasks", "o": "4", "p": "1"},
    ],
)
def test_the_task_list_takes_its_own_filters_and_paging(
    embedded_result_db: ResultDB, viewer: Client, query: dict[str, str]
) -> None:
    insert_rows(row("listed", worker="w1", queue="celery"))
    response = viewer.get(reverse(CHANGELIST), query)
    assert response.status_code == 200
    assert "listed" in response.text


def test_the_group_list_takes_no_lookup(embedded_result_db: ResultDB, viewer: Client) -> None:
    groups = reverse("admin:celery_sa_groupresult_changelist")
    assert viewer.get(groups).status_code == 200
    assert viewer.get(groups, {"result__contains": "x"}).status_code == 400


def test_an_empty_to_field_is_no_field(embedded_result_db: ResultDB, viewer: Client) -> None:
    insert_rows(row("shown"))
    page = reverse("admin:celery_sa_taskresult_change", args=[selected()[0]])
    response = viewer.get(page, {"_to_field": ""})  # Django 6.1 alone answers 500
    assert response.status_code == 200 and "shown" in response.text


@override_settings(TIME_ZONE="Asia/Shanghai")
@pytest.mark.parametrize(
    "query", [{"date_done__gte": "0001-01-01 00:00"}, {"date_done__lt": "9999-12-31 23:59"}]
)
def test_a_date_filter_at_the_calendars_ends_is_a_list(
    embedded_result_db: ResultDB, viewer: Client, query: dict[str, str]
) -> None:
    insert_rows(row("listed"))
    with override_settings(CELERY_TIMEZONE="America/New_York"):
        response = viewer.get(reverse(CHANGELIST), query)
    assert response.status_code == 200 and "listed" in response.text


@override_settings(CELERY_TIMEZONE="Asia/Shanghai", TIME_ZONE="UTC")
def test_a_stored_time_at_the_calendars_ends_is_shown_as_stored(
    embedded_result_db: ResultDB, viewer: Client
) -> None:
    insert_rows(row("ancient", date_done=datetime(1, 1, 1, 0, 0)))
    response = viewer.get(reverse(CHANGELIST))
    assert response.status_code == 200 and "Jan. 1, 0001, midnight" in response.text
    page = viewer.get(reverse("admin:celery_sa_taskresult_change", args=selected()))
    assert page.status_code == 200 and "Jan. 1, 0001, midnight" in page.text


@pytest.mark.parametrize(
    "query", [{"status": "SUCCESS\x00"}, {"name": "a\x00b"}, {"q": "x" * 60_000}]
)
def test_a_value_no_column_can_hold_finds_nothing(
    embedded_result_db: ResultDB, viewer: Client, query: dict[str, str]
) -> None:
    # Before: PostgreSQL refused the NUL and SQLite the long LIKE pattern, and the list
    # redirected with "Cannot read the Celery result table".
    insert_rows(row("unmatched"))
    response = viewer.get(reverse(CHANGELIST), query)
    assert response.status_code == 200
    assert "unmatched" not in response.text and "0 task results" in response.text


@pytest.mark.parametrize(("limit", "decoded"), [(4 * MB, True), (1024, False)])
def test_the_decode_limit_is_a_setting(
    embedded_result_db: ResultDB, viewer: Client, limit: int, decoded: bool
) -> None:
    insert_rows(row("sized", result=json.dumps({"rows": ["r" * 100] * 20_000}).encode()))
    page = reverse("admin:celery_sa_taskresult_change", args=selected())
    with override_settings(CELERY_SA_DECODE_LIMIT=limit):
        text = viewer.get(page).text
    assert ("too large to decode here" not in text) is decoded
    assert (text.count("&quot;rrrr") == 20_000) is decoded


# -- bounded exports ------------------------------------------------------------------------


def test_the_export_reads_only_the_columns_it_writes(
    embedded_result_db: ResultDB, viewer: Client
) -> None:
    insert_rows(row("plain", children=b"[]", stamps=b"{}", traceback="Traceback"))
    with CaptureQueriesContext(connections[embedded_result_db.alias]) as queries:
        (exported,) = exported_rows(export(viewer, selected()))
    assert exported["task_id"] == "plain" and exported["traceback"] == "Traceback"
    reads = [q["sql"] for q in queries.captured_queries if "celery_taskmeta" in q["sql"]]
    assert reads, queries
    for sql in reads:
        assert "children" not in sql and "stamps" not in sql, sql
        # The traceback only as its first cell's worth and its length, never whole.
        mentions = sql.count('"celery_taskmeta"."traceback"')
        wrapped = re.findall(r'(?:SUBSTR|LENGTH)\("celery_taskmeta"\."traceback"', sql)
        assert mentions == len(wrapped), sql


@pytest.mark.slow
def test_a_large_export_stays_within_bounded_memory(
    embedded_result_db: ResultDB, viewer: Client
) -> None:
    # 120 rows of three values just under the decode limit each: 360 MB if read at once.
    value = json.dumps("x" * (MB - 16)).encode()
    insert_rows(*(row(f"big-{i:03}", result=value, args=value, kwargs=value) for i in range(120)))
    tracemalloc.start()
    try:
        rows = []
        for line in export(viewer, selected()).streaming_content:
            rows.extend(csv.reader(io.StringIO(line.decode())))
            rows[-1] = [value[:100] for value in rows[-1]]  # keep the test's own memory low
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    header, *rows = rows
    assert len(rows) == 120
    assert {r[0] for r in rows} == {f"big-{i:03}" for i in range(120)}
    # Every value is cut with a marker: the rest of a 1 MB value is not written.
    result = header.index("result")
    assert all(r[result].startswith('"xxxxx') for r in rows)
    assert peak < 64 * MB, f"peak {peak / MB:.0f} MB"


def test_exported_cells_hold_at_most_what_a_spreadsheet_cell_holds(
    embedded_result_db: ResultDB, viewer: Client
) -> None:
    insert_rows(row("long", traceback="t" * 100_000, result=json.dumps("r" * 50_000).encode()))
    (exported,) = exported_rows(export(viewer, selected()))
    for column, length in (("traceback", 100_000), ("result", 50_002)):
        value = exported[column]
        assert 32_760 <= len(value) <= 32_767
        kept = len(value.partition("\n")[0])
        assert value.endswith(f"\n… ({length - kept} more characters)"), value[-50:]


@override_settings(CELERY_SA_EXPORT_MAX_ROWS=2)
def test_an_export_larger_than_its_limit_is_refused_with_a_message(
    embedded_result_db: ResultDB, viewer: Client
) -> None:
    insert_rows(*(row(f"task-{i}") for i in range(3)))
    response = viewer.post(
        reverse(CHANGELIST),
        {"action": "export_csv", "_selected_action": selected(), "select_across": "1"},
        follow=True,
    )
    assert response["Content-Type"].startswith("text/html")
    assert messages_of(response) == [
        "This action takes at most 2 tasks at a time: narrow the selection with the filters "
        "(the limit is CELERY_SA_EXPORT_MAX_ROWS for the export, CELERY_SA_ACTION_MAX_ROWS "
        "for re-run and revoke)."
    ]
    assert len(exported_rows(export(viewer, selected()[:2]))) == 2


@override_settings(CELERY_SA_ACTION_MAX_ROWS=1)
def test_revoke_and_rerun_take_at_most_their_limit(
    embedded_result_db: ResultDB,
    admin_client: Client,
    sqla_broker: str,
    actions_on: Callable[[str], Celery],
) -> None:
    actions_on(sqla_broker)
    insert_rows(row("one", status="STARTED"), row("two", status="STARTED"))
    for action in ("revoke", "rerun"):
        response = admin_client.post(
            reverse(CHANGELIST), {"action": action, "_selected_action": selected()}, follow=True
        )
        assert messages_of(response) == [
            "This action takes at most 1 task at a time: narrow the selection with the filters "
            "(the limit is CELERY_SA_EXPORT_MAX_ROWS for the export, CELERY_SA_ACTION_MAX_ROWS "
            "for re-run and revoke)."
        ]


# -- re-run: registered tasks only, after a confirmation page -------------------------------


@pytest.fixture
def rerun_app(sqla_broker: str, actions_on: Callable[[str], Celery]) -> Celery:
    app = actions_on(sqla_broker)

    @app.task(name="project.tasks.add", shared=False)  # type: ignore[untyped-decorator]
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="billing.charge", shared=False)  # type: ignore[untyped-decorator]
    def charge(amount: int) -> None:
        pass

    return app


def queued(app: Celery) -> list[tuple[str, Any]]:
    """The messages waiting in the default queue: (task name, args)."""
    found = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue("celery")
        while True:
            try:
                message = queue.get(timeout=1)
            except queue.Empty:
                return found
            found.append((message.headers["task"], message.decode()[0]))
            message.ack()


def confirm(client: Client, pks: list[int]) -> Any:
    """Choose the re-run action: the confirmation page."""
    return client.post(reverse(CHANGELIST), {"action": "rerun", "_selected_action": pks})


def send(client: Client, page: Any) -> Any:
    """Post the confirmation page's form as the browser would."""
    context = page.context
    data = {
        "action": "rerun",
        "post": "yes",
        "digest": context["digest"],
        "_selected_action": [r.pk for r in context["plan"]],
    }
    return client.post(reverse(CHANGELIST), data, follow=True)


def test_rerun_first_shows_what_it_would_send_and_sends_nothing(
    embedded_result_db: ResultDB, admin_client: Client, rerun_app: Celery
) -> None:
    insert_rows(
        row("again", name="project.tasks.add", args=b"[2, 3]", kwargs=b"{}"),
        row("planted", name="django.core.management.call_command", args=b'["flush"]'),
        row("builtin", name="celery.chord_unlock", args=b'["x"]'),
        row("nameless", name=None),
    )
    page = confirm(admin_client, selected())
    assert page.status_code == 200
    text = page.text
    assert "This sends 1 task again" in text
    assert "project.tasks.add" in text and "[\n  2,\n  3\n]" in text
    assert (
        "Task planted: django.core.management.call_command is not a task the Celery app has "
        "registered (or CELERY_SA_RERUN_TASKS leaves it out)." in text
    )
    assert "Task builtin: celery.chord_unlock is not a task the Celery app" in text
    assert "Task nameless: no task name stored; re-running needs CELERY_RESULT_EXTENDED." in text
    assert queued(rerun_app) == []


def test_rerun_sends_only_registered_tasks_once_confirmed(
    embedded_result_db: ResultDB, admin_client: Client, rerun_app: Celery
) -> None:
    insert_rows(
        row("again", name="project.tasks.add", args=b"[2, 3]", kwargs=b"{}"),
        row("planted", name="django.core.management.call_command", args=b'["flush"]'),
    )
    response = send(admin_client, confirm(admin_client, selected()))
    sent, refused = messages_of(response)[-1], messages_of(response)[0]
    assert sent.startswith("Sent 1 task again: ")
    assert refused.startswith("Task planted: django.core.management.call_command is not")
    assert queued(rerun_app) == [("project.tasks.add", [2, 3])]


@override_settings(CELERY_SA_RERUN_TASKS=["billing.*"])
def test_the_rerun_setting_narrows_the_registered_tasks(
    embedded_result_db: ResultDB, admin_client: Client, rerun_app: Celery
) -> None:
    insert_rows(
        row("charge", name="billing.charge", args=b"[5]"),
        row("add", name="project.tasks.add", args=b"[2, 3]"),
    )
    response = send(admin_client, confirm(admin_client, selected()))
    assert "Task add: project.tasks.add is not a task" in messages_of(response)[0]
    assert queued(rerun_app) == [("billing.charge", [5])]


def test_a_row_changed_after_the_confirmation_is_not_sent(
    embedded_result_db: ResultDB, admin_client: Client, rerun_app: Celery
) -> None:
    insert_rows(row("again", name="project.tasks.add", args=b"[2, 3]"))
    page = confirm(admin_client, selected())
    TaskResult.objects.filter(task_id="again").update(args=b"[666, 3]")
    response = send(admin_client, page)
    assert messages_of(response) == [
        "The selected tasks changed since they were shown: nothing was sent."
    ]
    assert queued(rerun_app) == []


def test_rerun_needs_its_permission(embedded_result_db: ResultDB, viewer: Client) -> None:
    insert_rows(row("again", name="project.tasks.add"))
    response = confirm(viewer, selected())
    # Django answers an action the user may not run as an unknown one: back to the list.
    assert response.status_code == 302
    assert response["Location"] == reverse(CHANGELIST)


# -- the limits' checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "check_id"),
    [
        ({"CELERY_SA_EXPORT_MAX_ROWS": 0}, "celery_sa.E012"),
        ({"CELERY_SA_DECODE_LIMIT": 1.5}, "celery_sa.E012"),
        ({"CELERY_SA_ACTION_MAX_ROWS": "100"}, "celery_sa.E012"),
        ({"CELERY_SA_RERUN_TASKS": "billing.*"}, "celery_sa.E013"),
        ({"CELERY_SA_BACKEND_RETRY_TIMEOUT": 0}, "celery_sa.E014"),
        ({"CELERY_SA_BACKEND_RETRY_TIMEOUT": "2 minutes"}, "celery_sa.E014"),
        ({"CELERY_SA_RERUN_TASKS": ["billing.*", 3]}, "celery_sa.E013"),
        ({"CELERY_SA_CHORD_SWEEP_INTERVAL": -1}, "celery_sa.E015"),
        ({"CELERY_SA_CHORD_SWEEP_INTERVAL": "1 minute"}, "celery_sa.E015"),
        ({"CELERY_SA_TRACK_SENT": "yes"}, "celery_sa.E016"),
        ({"CELERY_SA_TRACK_SENT_DELAY": -0.05}, "celery_sa.E016"),
        ({"CELERY_SA_TRACK_SENT_DELAY": "50ms"}, "celery_sa.E016"),
        ({"CELERY_SA_CHORD_STUCK_AFTER": 0}, "celery_sa.E017"),
        ({"CELERY_SA_CHORD_STUCK_AFTER": "1 hour"}, "celery_sa.E017"),
        ({"CELERY_SA_READ_REPLICA": 3}, "celery_sa.E018"),
        ({"CELERY_SA_READ_REPLICA": "db+nosuchdb://replica/app"}, "celery_sa.E018"),
    ],
)
def test_wrong_limits_fail_the_checks(settings: dict[str, Any], check_id: str) -> None:
    with override_settings(**settings), pytest.raises(Exception, match=check_id):
        call_command("check")
