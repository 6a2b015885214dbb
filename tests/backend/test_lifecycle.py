"""A task's life in its row (celery_sa's backend, real workers): the time it was sent,
stamped on its message by the publisher, and the start of its execution, noted by the
worker, both written with its result; the queue wait and the runtime in the admin."""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import timedelta
from io import StringIO

import pytest
from celery import Celery
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from celery_sa.admin.display import format_runtime
from celery_sa.lifecycle import SENT_HEADER
from celery_sa.models import TaskAttempt, TaskResult
from tests.support.workers import Worker

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

TASKS = "tests.support.backend_tasks"
FLAKY = f"{TASKS}.flaky"
# The timeline of a task that failed twice, then succeeded, in the order it is drawn.
TIMELINE = (
    "sent",
    "execution 1",
    "ConnectionError: attempt 0",
    "execution 2",
    "ConnectionError: attempt 1",
    "execution 3",
    'data-status="SUCCESS"',
)


def test_a_task_records_when_it_was_sent_and_started_with_its_result(
    worker_and_client: tuple[Worker, Celery], admin_client: Client
) -> None:
    """Two processes, three one-second tasks: the third waits about a second for a slot."""
    _, app = worker_and_client
    results = [app.send_task(f"{TASKS}.nap", (1.0, n)) for n in range(3)]
    assert [r.get(timeout=30) for r in results] == [0, 1, 2]
    rows = [TaskResult.objects.get(task_id=r.id) for r in results]
    for row in rows:
        assert row.sent is not None and row.started is not None and row.date_done is not None
        assert timedelta(0) <= row.started - row.sent < timedelta(seconds=10)
        assert row.date_done - row.started >= timedelta(seconds=1)
    waits = sorted(row.queue_wait or 0.0 for row in rows)
    assert waits[-1] >= 0.9  # the third waited for one of the first two
    assert waits[0] < 0.9
    slowest = max(rows, key=lambda row: row.queue_wait or 0.0)
    page = admin_client.get(reverse("admin:celery_sa_taskresult_change", args=[slowest.pk]))
    assert page.status_code == 200
    assert_field(page.content.decode(), "Queue wait", format_runtime(slowest.queue_wait or 0.0))
    # celery_sa_stats: the same waits, by name (the slowest is the p95 of three).
    data = json.loads(stats("--json"))
    [naps] = data["queue_waits"]
    assert (naps["name"], naps["results"]) == (f"{TASKS}.nap", 3)
    assert naps["p95_seconds"] == pytest.approx(slowest.queue_wait, abs=0.002)
    # ...and the runtimes: three one-second naps, each from its start to done.
    [ran] = data["runtimes"]
    assert (ran["name"], ran["results"]) == (f"{TASKS}.nap", 3)
    longest = max((row.date_done - row.started).total_seconds() for row in rows)
    assert 1.0 <= ran["p95_seconds"] == pytest.approx(longest, abs=0.002)
    printed = stats()
    assert "Queue wait p50" in printed
    assert re.search(rf"^{re.escape(TASKS)}\.nap +3 +1\.\d\d\d s +1\.\d\d\d s$", printed, re.M)
    listing = admin_client.get(reverse("admin:celery_sa_taskresult_changelist"))
    assert f'<td class="field-queue_wait">{format_runtime(slowest.queue_wait or 0.0)}</td>' in (
        listing.content.decode()
    )


def assert_field(page: str, label: str, value: str) -> None:
    """The admin page shows ``label`` with ``value`` (Django's readonly field markup)."""
    label_at = page.index(f"<label>{label}:</label>")
    assert f'<div class="readonly">{value}</div>' in page[label_at : label_at + 300]


def test_a_task_that_retried_twice_keeps_each_attempt_and_shows_its_timeline(
    worker_and_client: tuple[Worker, Celery], admin_client: Client
) -> None:
    """Two executions failed with ConnectionError and were retried 0.2 s later; the third
    succeeded: the row keeps the first send and the last start, the attempts the rest."""
    _, app = worker_and_client
    first = app.send_task(FLAKY, (2,))
    assert first.get(timeout=30) == 2
    row = TaskResult.objects.get(task_id=first.id)
    assert (row.status, row.retries) == ("SUCCESS", 2)
    assert row.sent is not None and row.started is not None and row.date_done is not None
    assert row.started - row.sent >= timedelta(seconds=0.4)  # two retries 0.2 s apart
    assert row.queue_wait is None  # a retried task's waits are its attempts'
    attempts = list(TaskAttempt.objects.filter(task_id=first.id).order_by("attempt"))
    assert [(a.attempt, a.status, a.exception, a.message) for a in attempts] == [
        (0, "RETRY", "ConnectionError", "attempt 0"),
        (1, "RETRY", "ConnectionError", "attempt 1"),
    ]
    moments = [row.sent]
    for attempt in attempts:
        assert attempt.date_started is not None
        assert f"ConnectionError('attempt {attempt.attempt}')" in (attempt.traceback or "")
        moments += [attempt.date_started, attempt.date_done]
    moments += [row.started, row.date_done]
    assert moments == sorted(moments)  # sent, started, retried, started, retried, started, done
    # Each retry ran 0.2 s after the execution before it asked for it.
    assert attempts[1].date_started - attempts[0].date_started >= timedelta(seconds=0.2)
    page = admin_client.get(reverse("admin:celery_sa_taskresult_change", args=[row.pk]))
    html = page.content.decode()
    steps = html[html.index('<ol class="celery-sa-timeline">') :]
    steps = steps[: steps.index("</ol>")]
    assert steps.count("<li ") == 4
    order = [steps.index(text) for text in TIMELINE]
    assert order == sorted(order)

    # The overview's names that retry most, and the metrics, count the two retries.
    overview = admin_client.get("/admin/celery_sa/overview/")
    [retried] = overview.context["overview"].retried.retried
    assert (retried.name, retried.exception, retried.retries) == (FLAKY, "ConnectionError", 2)
    assert 'id="celery-sa-retried"' in overview.content.decode()
    scraped = admin_client.get("/metrics/celery/").content.decode()
    assert f'celery_sa_task_retries{{exception="ConnectionError",name="{FLAKY}"}} 2.0' in scraped
    assert json.loads(stats("--json"))["retries"] == [
        {"name": FLAKY, "exception": "ConnectionError", "retries": 2}
    ]
    assert [line.split() for line in stats().splitlines()[-2:]] == [
        ["Task", "name", "Exception", "Retries"],
        [FLAKY, "ConnectionError", "2"],
    ]


def stats(*args: str) -> str:
    """``manage.py celery_sa_stats`` over the last hour."""
    out = StringIO()
    call_command("celery_sa_stats", "--since", "1h", *args, stdout=out)
    return out.getvalue()


def test_messages_without_celery_sa_leave_the_columns_empty(
    worker_and_client: tuple[Worker, Celery],
) -> None:
    """A publisher without celery_sa (no stamp): no sent time, the start still noted."""
    _, app = worker_and_client
    result = app.send_task(f"{TASKS}.add", (1, 2), headers={SENT_HEADER: "not a time"})
    assert result.get(timeout=30) == 3
    row = TaskResult.objects.get(task_id=result.id)
    assert row.sent is None
    assert row.started is not None


def test_with_track_sent_a_task_nobody_runs_yet_is_seen_queued_and_growing_old(
    worker_and_client: tuple[Worker, Celery], admin_client: Client
) -> None:
    """CELERY_SA_TRACK_SENT: the task is sent to a queue no worker consumes yet; its PENDING
    row shows in the admin, the overview, the metrics and celery_sa_stats, older each time;
    then the worker consumes the queue, and the same row ends complete."""
    worker, app = worker_and_client
    app.conf.sa_track_sent = True
    later = f"{worker.queue}-later"
    result = app.send_task(f"{TASKS}.add", (2, 3), queue=later)
    row = TaskResult.objects.get(task_id=result.id)
    assert (row.status, row.name, row.queue) == ("PENDING", f"{TASKS}.add", later)
    assert row.sent is not None and row.started is None
    assert result.state == "PENDING"

    listing = admin_client.get(reverse("admin:celery_sa_taskresult_changelist") + "?status=PENDING")
    assert result.id in listing.content.decode()
    [queued] = admin_client.get("/admin/celery_sa/overview/").context["overview"].unfinished
    assert (queued.status, queued.count, queued.oldest_task_id) == ("PENDING", 1, result.id)
    ages = []
    for _ in range(2):
        scraped = admin_client.get("/metrics/celery/").content.decode()
        assert 'celery_sa_tasks_unfinished{state="PENDING"} 1.0' in scraped
        ages.append(pending_age(scraped))
        time.sleep(1.1)
    assert ages[1] - ages[0] >= 1.0
    [unfinished] = json.loads(stats("--json"))["unfinished"]
    assert (unfinished["state"], unfinished["tasks"]) == ("PENDING", 1)
    assert unfinished["oldest_age_seconds"] >= ages[1] + 1.0

    node = f"{worker.queue}@{socket.gethostname()}"
    assert app.control.add_consumer(later, destination=[node], reply=True, timeout=10)
    assert result.get(timeout=30) == 5
    done = TaskResult.objects.get(task_id=result.id)
    assert (done.pk, done.status, done.name, done.queue) == (row.pk, "SUCCESS", row.name, later)
    assert done.sent == row.sent and done.started is not None and done.date_done is not None
    assert done.started - done.sent >= timedelta(seconds=2)  # the time it waited, queued
    assert not json.loads(stats("--json"))["unfinished"]


def pending_age(scraped: str) -> float:
    """The metrics' age of the oldest PENDING task."""
    prefix = 'celery_sa_tasks_unfinished_oldest_age_seconds{state="PENDING"} '
    [line] = [line for line in scraped.splitlines() if line.startswith(prefix)]
    return float(line.removeprefix(prefix))
