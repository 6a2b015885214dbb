"""``manage.py celery_sa_purge``: old results go, a bounded batch a transaction; nothing else."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import override_settings
from sqlalchemy import create_engine, insert, select
from sqlalchemy.pool import NullPool

from celery_sa.conf import configured_tables
from celery_sa.db import result_database
from celery_sa.db.url import sqlalchemy_url
from celery_sa.models import GroupResult, TaskResult
from celery_sa.tasks import purge_results
from tests.support.commands import BASE_DIR, project_env
from tests.support.databases import ResultDB, drop_result_tables, fresh_result_db, result_db_param
from tests.support.rows import ago, insert_into, insert_rows, row

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def insert_groups(*dates: datetime | None) -> None:
    insert_into(
        configured_tables().group,
        tuple(
            {"taskset_id": f"g-{n}", "result": b"[]", "date_done": date_done}
            for n, date_done in enumerate(dates)
        ),
    )


def purge(*args: str) -> str:
    out = StringIO()
    call_command("celery_sa_purge", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def aged_rows(result_db: ResultDB) -> ResultDB:
    """Ten tasks from ten days ago (7 SUCCESS, 3 FAILURE of app.tasks.b), four from an
    hour ago, two without a date_done; two old groups and a new one."""
    insert_rows(
        *(row(f"old-ok-{n}", date_done=ago(days=10, minutes=n)) for n in range(7)),
        *(
            row(f"old-failed-{n}", status="FAILURE", name="app.tasks.b", date_done=ago(days=10))
            for n in range(3)
        ),
        *(row(f"new-{n}", date_done=ago(hours=1)) for n in range(4)),
        row("undated-1", status="STARTED", date_done=None),
        row("undated-2", status="PENDING", date_done=None),
    )
    insert_groups(ago(days=9), ago(days=8), ago(minutes=5))
    return result_db


def remaining() -> set[str]:
    return set(TaskResult.objects.values_list("task_id", flat=True))


def test_purge_deletes_old_results_in_bounded_batches(aged_rows: ResultDB) -> None:
    output = purge("--older-than", "7d", "--batch-size", "3", "--jobs", "1", "-v", "2")
    lines = output.splitlines()
    assert lines[0].startswith("Deleting results done before ")
    assert lines[0].endswith(", at most 3 rows a transaction.")
    assert lines[1:] == [
        "Batch 1: deleted 3 rows.",
        "Batch 2: deleted 3 rows.",
        "Batch 3: deleted 3 rows.",
        "Batch 4: deleted 1 rows.",
        "Batch 5: deleted 2 rows.",
        "Deleted 10 task results and 2 group results older than 7 days.",
        "Kept 2 task results without a date_done (never finished): --undated deletes them.",
        lines[-1],
    ]
    assert lines[-1].startswith("5 batches in ")
    assert remaining() == {"new-0", "new-1", "new-2", "new-3", "undated-1", "undated-2"}
    assert list(GroupResult.objects.values_list("taskset_id", flat=True)) == ["g-2"]
    # Nothing left to do is said too.
    assert purge("--older-than", "7d").splitlines() == [
        "Deleted 0 task results and 0 group results older than 7 days.",
        "Kept 2 task results without a date_done (never finished): --undated deletes them.",
    ]


def test_counters_of_chords_that_never_finished_go_with_the_groups(aged_rows: ResultDB) -> None:
    tables = configured_tables()
    insert_into(
        tables.chord,
        [
            {"group_id": "lost", "chord_size": 3, "date_created": ago(days=9)},
            {"group_id": "running", "chord_size": 3, "date_created": ago(minutes=5)},
        ],
    )
    insert_into(
        tables.part,
        [
            {"group_id": "lost", "task_id": "p1", "group_index": 0, "date_done": ago(days=9)},
            {"group_id": "running", "task_id": "p2", "group_index": 0, "date_done": ago(minutes=4)},
        ],
    )
    assert purge("--older-than", "7d", "--dry-run").splitlines()[0] == (
        "Would delete 10 task results and 2 group results and 1 unfinished chord counter "
        "older than 7 days."
    )
    assert purge("--older-than", "7d").splitlines()[0] == (
        "Deleted 10 task results and 2 group results and 1 unfinished chord counter "
        "older than 7 days."
    )
    engine = create_engine(result_database().url, poolclass=NullPool)
    with engine.connect() as connection:
        assert connection.execute(select(tables.chord.c.group_id)).scalars().all() == ["running"]
        assert connection.execute(select(tables.part.c.task_id)).scalars().all() == ["p2"]
    engine.dispose()


def insert_attempts(*attempts: tuple[str, int, datetime]) -> None:
    """Attempts as celery_sa's backend writes them for a retry: (task id, number, done)."""
    insert_into(
        configured_tables().attempt,
        tuple(
            {"task_id": task_id, "attempt": n, "status": "RETRY", "date_done": done}
            for task_id, n, done in attempts
        ),
    )


def remaining_attempts() -> list[tuple[str, int]]:
    attempt = configured_tables().attempt
    engine = create_engine(result_database().url, poolclass=NullPool)
    with engine.connect() as connection:
        rows = connection.execute(select(attempt.c.task_id, attempt.c.attempt)).all()
    engine.dispose()
    return sorted((task_id, n) for task_id, n in rows)


@pytest.fixture
def retried_rows(aged_rows: ResultDB) -> ResultDB:
    """Attempts of two old tasks, of a new task (one of them old), of a task without a
    date_done, and two of tasks whose rows are gone (an old and a new one)."""
    insert_attempts(
        ("old-failed-0", 0, ago(days=10, minutes=2)),
        ("old-failed-0", 1, ago(days=10, minutes=1)),
        ("old-ok-1", 0, ago(days=10, minutes=5)),
        ("new-0", 0, ago(days=8)),
        ("new-0", 1, ago(hours=2)),
        ("undated-1", 0, ago(days=9)),
        ("forgotten", 0, ago(days=9)),
        ("forgotten-lately", 0, ago(hours=3)),
    )
    return aged_rows


KEPT_ATTEMPTS = [("forgotten-lately", 0), ("new-0", 0), ("new-0", 1), ("undated-1", 0)]


def test_the_attempts_of_purged_tasks_go_with_them_and_those_of_kept_tasks_stay(
    retried_rows: ResultDB,
) -> None:
    assert purge("--older-than", "7d", "--dry-run").splitlines()[0] == (
        "Would delete 10 task results and 4 task attempts and 2 group results older than 7 days."
    )
    assert len(remaining_attempts()) == 8
    output = purge("--older-than", "7d", "--batch-size", "3", "--jobs", "2")
    assert output.splitlines()[0] == (
        "Deleted 10 task results and 4 task attempts and 2 group results older than 7 days."
    )
    # Kept: those of tasks kept (even one older than the cutoff), one of a task gone lately.
    assert remaining_attempts() == KEPT_ATTEMPTS
    assert purge("--older-than", "7d").splitlines()[0] == (
        "Deleted 0 task results and 0 group results older than 7 days."
    )


def test_a_selection_takes_the_attempts_of_its_tasks_only(retried_rows: ResultDB) -> None:
    assert purge("--older-than", "7d", "--status", "FAILURE", "--batch-size", "2").splitlines() == [
        "Deleted 3 task results and 2 task attempts (status FAILURE) older than 7 days."
    ]
    # Without the groups, the attempt of a task gone otherwise stays too.
    assert remaining_attempts() == sorted([*KEPT_ATTEMPTS, ("old-ok-1", 0), ("forgotten", 0)])
    assert purge("--older-than", "7d", "--undated", "--no-groups").splitlines() == [
        "Deleted 7 task results and 2 task attempts older than 7 days.",
        "Deleted 2 task results without a date_done.",
    ]
    assert remaining_attempts() == [
        ("forgotten", 0),
        ("forgotten-lately", 0),
        ("new-0", 0),
        ("new-0", 1),
    ]


def test_the_purge_task_counts_the_attempts(retried_rows: ResultDB) -> None:
    dry = purge_results.apply(kwargs={"older_than": "7d", "dry_run": True}).get()
    assert (dry["tasks"], dry["attempts"]) == (10, 4)
    done = purge_results.apply(kwargs={"older_than": "7d", "undated": True}).get()
    assert (done["tasks"], done["attempts"]) == (12, 5)
    assert remaining_attempts() == [("forgotten-lately", 0), ("new-0", 0), ("new-0", 1)]


def test_tables_without_the_attempt_table_are_purged_as_before(aged_rows: ResultDB) -> None:
    engine = create_engine(result_database().url, poolclass=NullPool)
    with engine.begin() as connection:
        configured_tables().attempt.drop(connection)
    engine.dispose()
    assert purge("--older-than", "7d", "--dry-run", "--undated").splitlines()[0] == (
        "Would delete 10 task results and 2 group results older than 7 days."
    )
    assert purge("--older-than", "7d", "--batch-size", "3", "--undated").splitlines() == [
        "Deleted 10 task results and 2 group results older than 7 days.",
        "Deleted 2 task results without a date_done.",
    ]
    assert remaining() == {"new-0", "new-1", "new-2", "new-3"}


def test_parallel_streams_delete_the_same_rows_in_bounded_batches(aged_rows: ResultDB) -> None:
    lines = purge("--older-than", "7d", "--batch-size", "2", "--jobs", "3", "-v", "2").splitlines()
    batches = [int(line.split()[3]) for line in lines if line.startswith("Batch ")]
    assert sum(batches) == 12 and max(batches) <= 2
    assert "Deleted 10 task results and 2 group results older than 7 days." in lines
    assert remaining() == {"new-0", "new-1", "new-2", "new-3", "undated-1", "undated-2"}


def test_dry_run_counts_and_deletes_nothing(aged_rows: ResultDB) -> None:
    assert purge("--older-than", "1d12h", "--dry-run", "--undated").splitlines() == [
        "Would delete 10 task results and 2 group results older than 1 day 12 hours.",
        "Would delete 2 task results without a date_done.",
        "Dry run: nothing was deleted.",
    ]
    assert TaskResult.objects.count() == 16
    assert GroupResult.objects.count() == 3


def test_undated_rows_go_only_when_asked(aged_rows: ResultDB) -> None:
    assert purge("--older-than", "30m", "--undated", "--no-groups").splitlines() == [
        "Deleted 14 task results older than 30 minutes.",
        "Deleted 2 task results without a date_done.",
    ]
    assert remaining() == set()
    assert GroupResult.objects.count() == 3


def test_status_and_name_select_task_results_and_leave_groups(aged_rows: ResultDB) -> None:
    # The rows without a date_done are neither FAILURE nor kept back by this purge.
    assert purge("--older-than", "7d", "--status", "failure").splitlines() == [
        "Deleted 3 task results (status FAILURE) older than 7 days."
    ]
    assert not remaining() & {f"old-failed-{n}" for n in range(3)}
    assert GroupResult.objects.count() == 3
    output = purge("--older-than", "7d", "--status", "SUCCESS,FAILURE", "--name", "app.tasks.job")
    assert output.splitlines()[0] == (
        "Deleted 7 task results (status SUCCESS, FAILURE; name app.tasks.job) older than 7 days."
    )
    assert remaining() == {"new-0", "new-1", "new-2", "new-3", "undated-1", "undated-2"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--older-than", "7x"],
            "'7x' is not a duration: use a number and a unit (w, d, h, m, s), e.g. 7d, 12h "
            "or 1d12h",
        ),
        (["--older-than", "0h"], "'0h' is not a positive duration"),
        (
            ["--status", "FAILED"],
            "unknown status 'FAILED': use one of FAILURE, IGNORED, PENDING, RECEIVED, "
            "REJECTED, RETRY, REVOKED, STARTED, SUCCESS",
        ),
        (["--batch-size", "0"], "the batch size must be between 1 and 10,000"),
        (["--batch-size", "20000"], "the batch size must be between 1 and 10,000"),
        (["--jobs", "0"], "the number of jobs must be between 1 and 8"),
    ],
)
def test_bad_options_are_refused_before_anything_is_deleted(
    aged_rows: ResultDB, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError) as raised:
        purge(*args)
    assert str(raised.value) == message
    assert TaskResult.objects.count() == 16


def test_the_default_age_is_celerys_result_expires(aged_rows: ResultDB) -> None:
    with override_settings(CELERY_RESULT_EXPIRES=timedelta(minutes=30)):
        assert purge("--dry-run").splitlines()[0] == (
            "Would delete 14 task results and 2 group results older than 30 minutes."
        )
    with override_settings(CELERY_RESULT_EXPIRES=90):
        assert purge("--dry-run").splitlines()[0].endswith("older than 1 minute 30 seconds.")
    assert purge("--dry-run").splitlines()[0] == (  # Celery's own default: one day
        "Would delete 10 task results and 2 group results older than 1 day."
    )
    with override_settings(CELERY_RESULT_EXPIRES=None), pytest.raises(CommandError) as raised:
        purge()
    assert str(raised.value) == (
        "CELERY_RESULT_EXPIRES is not set (or 0): say how old results must be, e.g. --older-than 7d"
    )


def test_missing_tables_are_a_clear_error(embedded_result_db: ResultDB) -> None:
    drop_result_tables()
    with pytest.raises(CommandError) as raised:
        purge("--older-than", "7d")
    assert str(raised.value).startswith("Cannot read the Celery result table celery_taskmeta (")
    assert str(raised.value).endswith(
        "Create or upgrade it with: python manage.py celery_sa_tables upgrade"
    )


def test_the_purge_task_takes_the_same_options(aged_rows: ResultDB) -> None:
    outcome = purge_results.apply(kwargs={"older_than": "7d", "statuses": ["FAILURE"]}).get()
    assert {k: outcome[k] for k in ("tasks", "groups", "undated_kept", "interrupted")} == {
        "tasks": 3,
        "groups": 0,
        "undated_kept": 0,
        "interrupted": False,
    }
    dry = purge_results.apply(kwargs={"older_than": "7d", "dry_run": True}).get()
    assert (dry["tasks"], dry["groups"]) == (7, 2)
    assert TaskResult.objects.count() == 13
    failed = purge_results.apply(kwargs={"older_than": "soon"})
    assert failed.failed() and "'soon' is not a duration" in str(failed.result)


@pytest.mark.parametrize("database", [result_db_param("sqlite"), result_db_param("mysqlclient")])
@pytest.mark.slow
def test_ctrl_c_stops_after_a_committed_batch_and_a_rerun_finishes(
    database: str, tmp_path: Path
) -> None:
    with fresh_result_db(database) as result_db:
        rows = 30_000
        database_settings = connections[result_database().alias].settings_dict
        engine = create_engine(sqlalchemy_url(database_settings), poolclass=NullPool)
        with engine.begin() as connection:
            connection.execute(
                insert(configured_tables().task),
                [row(f"old-{n}", date_done=ago(days=30, seconds=n)) for n in range(rows)],
            )
        engine.dispose()
        env = project_env(
            tmp_path,
            DATABASE_URL=f"sqlite:///{tmp_path / 'django.sqlite3'}",
            CELERY_RESULT_BACKEND=result_db.url,
        )
        argv = [sys.executable, "manage.py", "celery_sa_purge", "--older-than", "7d"]
        process = subprocess.Popen(
            [*argv, "--batch-size", "100", "-v", "2"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Batch 3:"):
                process.send_signal(signal.SIGINT)
                break
        out, err = process.communicate(timeout=60)
        assert process.returncode == 130, (out, err)
        assert "Stopping after this batch (Ctrl-C again to stop now)." in out
        assert err.strip() == "CommandError: Interrupted; run the command again to carry on."
        summary = next(line for line in out.splitlines() if line.startswith("Deleted "))
        deleted = int(summary.split()[1].replace(",", ""))
        assert deleted % 100 == 0 and 300 <= deleted < rows
        assert TaskResult.objects.count() == rows - deleted
        again = subprocess.run(argv, cwd=BASE_DIR, env=env, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines()[0] == (
            f"Deleted {rows - deleted:,} task results and 0 group results older than 7 days."
        )
        assert TaskResult.objects.count() == 0


@pytest.mark.slow
def test_a_terminal_gets_a_progress_bar(tmp_path: Path) -> None:
    with fresh_result_db("sqlite") as result_db:
        insert_rows(*(row(f"old-{n}", date_done=ago(days=9, seconds=n)) for n in range(250)))
        env = project_env(
            tmp_path,
            DATABASE_URL=f"sqlite:///{tmp_path / 'django.sqlite3'}",
            CELERY_RESULT_BACKEND=result_db.url,
        )
        controller, terminal = pty.openpty()
        argv = [sys.executable, "manage.py", "celery_sa_purge", "--older-than", "7d"]
        process = subprocess.Popen(
            [*argv, "--batch-size", "100"], cwd=BASE_DIR, env=env, stdout=terminal
        )
        os.close(terminal)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            output += chunk
        os.close(controller)
        assert process.wait(60) == 0
    text = output.decode().replace("\r\n", "\n")
    assert "\r[############..................] 100 of 250 rows" in text
    assert "\r[##############################] 250 of 250 rows\n" in text
    assert text.endswith("Deleted 250 task results and 0 group results older than 7 days.\n")


def test_the_members_of_the_groups_deleted_go_with_them(aged_rows: ResultDB) -> None:
    tables = configured_tables()
    members = [
        {"group_id": group_id, "task_id": f"{group_id}-t{n}", "group_index": n, "date_done": done}
        for group_id, done in (("g-0", ago(days=9)), ("g-1", ago(days=8)), ("g-2", ago(minutes=5)))
        for n in range(2)
    ]
    insert_into(tables.member, members)
    assert purge("--older-than", "7d", "--dry-run").splitlines()[0] == (
        "Would delete 10 task results and 2 group results and 4 group member rows "
        "older than 7 days."
    )
    assert purge("--older-than", "7d").splitlines()[0] == (
        "Deleted 10 task results and 2 group results and 4 group member rows older than 7 days."
    )
    engine = create_engine(result_database().url, poolclass=NullPool)
    with engine.connect() as connection:
        kept = connection.execute(select(tables.member.c.task_id)).scalars().all()
    engine.dispose()
    assert sorted(kept) == ["g-2-t0", "g-2-t1"]
