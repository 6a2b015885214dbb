"""``manage.py celery_sa_stats`` on hand-made rows, and stats then purge on a real worker's rows."""

from __future__ import annotations

import json
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from celery_sa.models import TaskResult
from tests.support.databases import ResultDB, drop_result_tables
from tests.support.rows import ago, insert_rows, row, wait_for_results
from tests.support.workers import producer, running_worker

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
TRACEBACK = 'Traceback (most recent call last):\n  File "x.py", line 1\n{}\n'


def stats(*args: str) -> str:
    out = StringIO()
    call_command("celery_sa_stats", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def recent_rows(result_db: ResultDB) -> str:
    """Seven results from the last day and an old failure; returns the newest failure's
    completion time as the table prints it (UTC, the test settings' zone)."""
    newest = ago(hours=1).replace(microsecond=0)
    insert_rows(
        *(row(f"add-{n}", name="app.tasks.add", date_done=ago(hours=2)) for n in range(3)),
        row("div-ok", name="app.tasks.divide", date_done=ago(hours=3)),
        row(
            "div-1",
            name="app.tasks.divide",
            status="FAILURE",
            date_done=ago(hours=5),
            traceback=TRACEBACK.format("ValueError: older"),
        ),
        row(
            "div-2",
            name="app.tasks.divide",
            status="FAILURE",
            date_done=newest,
            traceback=TRACEBACK.format("ZeroDivisionError: division by zero"),
        ),
        row("anonymous", name=None, status="RETRY", date_done=ago(minutes=10)),
        row("old", name="app.tasks.divide", status="FAILURE", date_done=ago(days=3)),
    )
    return newest.strftime("%Y-%m-%d %H:%M:%S")


def test_the_table_counts_statuses_and_names_in_the_window(recent_rows: str) -> None:
    lines = stats("--since", "24h").splitlines()
    assert lines[:-3] == [
        "Task results done in the last 1 day: 7",
        "",
        "Status   Results",
        "SUCCESS        4",
        "FAILURE        2",
        "RETRY          1",
        "",
        "Task name         Results  Failures  Failure rate  Newest failure",
        "app.tasks.add           3         0          0.0%  —",
        "app.tasks.divide        3         2         66.7%  "
        f"{recent_rows}  div-2  ZeroDivisionError: division by zero",
        "(no name)               1         0          0.0%  —",
    ]
    # The tasks unfinished now, whatever the window: the RETRY row, 10 minutes old.
    assert lines[-3:-1] == ["", "Unfinished now  Tasks  Oldest for  Oldest task"]
    state, tasks, age, unit, task_id = lines[-1].split()
    assert (state, tasks, unit, task_id) == ("RETRY", "1", "s", "anonymous")
    assert 600 <= int(age) < 660
    assert stats("--since", "90m").splitlines()[0] == (
        "Task results done in the last 1 hour 30 minutes: 2"
    )
    assert stats("--since", "1m").splitlines()[:3] == [
        "No task results done in the last 1 minute.",
        "",
        "Unfinished now  Tasks  Oldest for  Oldest task",
    ]


def test_json_has_the_same_figures_for_scripts(recent_rows: str) -> None:
    data = json.loads(stats("--json"))
    assert data["total"] == 7
    assert data["by_status"] == {"SUCCESS": 4, "FAILURE": 2, "RETRY": 1}
    divide = next(entry for entry in data["by_name"] if entry["name"] == "app.tasks.divide")
    assert divide == {
        "name": "app.tasks.divide",
        "total": 3,
        "failures": 2,
        "failure_rate": 0.6667,
        "newest_failure": {
            "task_id": "div-2",
            "date_done": divide["newest_failure"]["date_done"],
            "exception": "ZeroDivisionError: division by zero",
        },
    }
    assert divide["newest_failure"]["date_done"].startswith(recent_rows.replace(" ", "T"))
    assert [entry["name"] for entry in data["by_name"]] == [
        "app.tasks.add",
        "app.tasks.divide",
        None,
    ]
    [retrying] = data["unfinished"]
    assert retrying == {
        "state": "RETRY",
        "tasks": 1,
        "oldest_task_id": "anonymous",
        "oldest_age_seconds": retrying["oldest_age_seconds"],
    }
    assert 600 <= retrying["oldest_age_seconds"] < 660


def test_bad_window_and_missing_tables_are_clear_errors(embedded_result_db: ResultDB) -> None:
    with pytest.raises(CommandError) as raised:
        stats("--since", "yesterday")
    assert str(raised.value) == (
        "--since: 'yesterday' is not a duration: use a number and a unit (w, d, h, m, s), "
        "e.g. 7d, 12h or 1d12h"
    )
    drop_result_tables()
    with pytest.raises(CommandError) as raised:
        stats()
    assert str(raised.value).startswith("Cannot read the Celery result table celery_taskmeta (")


@pytest.mark.slow
def test_stats_and_purge_on_a_real_workers_rows(
    result_db: ResultDB, sqla_broker: str, tmp_path: Path
) -> None:
    with running_worker(tmp_path, result_url=result_db.url, broker_url=sqla_broker) as worker:
        app = producer(sqla_broker, result_db.url)
        send = lambda name, *args: str(app.send_task(name, args, queue=worker.queue).id)  # noqa: E731
        first = [send("project.tasks.add", n, 1) for n in range(3)]
        failing = [send("project.tasks.divide", 1, 0) for _ in range(2)]
        wait_for_results(first + failing, worker)
        finished = time.monotonic()
        data = json.loads(stats("--since", "1h", "--json"))
        assert (data["total"], data["by_status"]) == (5, {"SUCCESS": 3, "FAILURE": 2})
        divide = next(e for e in data["by_name"] if e["name"] == "project.tasks.divide")
        assert (divide["failures"], divide["failure_rate"]) == (2, 1.0)
        assert divide["newest_failure"]["task_id"] in failing
        assert divide["newest_failure"]["exception"] == "ZeroDivisionError: division by zero"
        time.sleep(max(0.0, finished + 4.5 - time.monotonic()))
        second = send("project.tasks.add", 2, 2)
        wait_for_results([second], worker)
        app.close()
        output = StringIO()
        call_command("celery_sa_purge", "--older-than", "3s", stdout=output)
    assert output.getvalue().splitlines() == [
        "Deleted 5 task results and 0 group results older than 3 seconds."
    ]
    assert list(TaskResult.objects.values_list("task_id", flat=True)) == [second]
