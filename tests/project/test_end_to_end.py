"""A real worker of the demo project writes results; Django's models and admin read them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import celery
import pytest
from celery import group
from django.db import connections
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from celery_sa.models import GroupResult, TaskResult
from tests.support.databases import RESULT_DBS, SCHEMA_DATABASES, ResultDB, fresh_result_db, tagged
from tests.support.rows import stored_value, wait_for_results
from tests.support.services import service_url
from tests.support.workers import Worker, producer, running_worker

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.slow,  # real workers
]


def send_demo_tasks(
    broker_url: str, result_url: str, worker: Worker, table_names: dict[str, str] | None = None
) -> dict[str, str]:
    """Send a success, a failure, a retry and a saved group of three; return their ids."""
    app = producer(broker_url, result_url)
    app.conf.database_table_names = table_names
    try:
        options = {"queue": worker.queue}
        ids = {
            "add": app.send_task("project.tasks.add", (2, 3), **options).id,
            "divide": app.send_task("project.tasks.divide", (1, 0), **options).id,
            "flaky": app.send_task("project.tasks.flaky", (2,), **options).id,
        }
        members = group(app.signature("project.tasks.add", (i, i)) for i in range(3))
        saved = members.apply_async(**options)
        saved.save(backend=app.backend)
        ids["group"] = saved.id
        for index, member in enumerate(saved.results):
            ids[f"member{index}"] = member.id
    finally:
        app.close()
    return ids


def run_task(
    tmp_path: Path,
    result_url: str,
    broker_url: str,
    name: str,
    args: tuple[Any, ...],
    conf: dict[str, Any] | None = None,
    **variables: str,
) -> str:
    """Run one task in a fresh worker (with these environment variables) and wait for its
    row; ``conf`` is the sending app's Celery configuration."""
    with running_worker(tmp_path, result_url=result_url, broker_url=broker_url, **variables) as w:
        app = producer(broker_url, result_url)
        app.conf.update(conf or {})
        try:
            task_id = str(app.send_task(name, args, queue=w.queue).id)
        finally:
            app.close()
        wait_for_results([task_id], w)
    return task_id


def assert_recent(date_done: datetime) -> None:
    """Stored by this test: within minutes of now, except where Celery 5.5's own backend
    wrote it (its column default is one time, computed when the process imported it)."""
    if celery.VERSION >= (5, 6):
        assert abs(date_done - timezone.now()) < timedelta(minutes=2)
    else:
        assert date_done < timezone.now()


def test_worker_results_are_read_through_the_models_and_the_admin(
    result_db: ResultDB, sqla_broker: str, tmp_path: Path, admin_client: Client
) -> None:
    with running_worker(tmp_path, result_url=result_db.url, broker_url=sqla_broker) as worker:
        ids = send_demo_tasks(sqla_broker, result_db.url, worker)
        task_ids = [value for key, value in ids.items() if key != "group"]
        wait_for_results(task_ids, worker)

    rows = {row.task_id: row for row in TaskResult.objects.filter(task_id__in=task_ids)}
    added = rows[ids["add"]]
    assert (added.status, stored_value(added.result)) == ("SUCCESS", 5)
    assert added.name == "project.tasks.add"
    assert json.loads(bytes(added.args)) == [2, 3]
    assert added.worker.startswith(worker.queue)
    assert added.queue == worker.queue
    assert_recent(added.date_done)

    failed = rows[ids["divide"]]
    assert failed.status == "FAILURE"
    assert "ZeroDivisionError" in failed.traceback

    retried = rows[ids["flaky"]]
    assert (retried.status, retried.retries) == ("SUCCESS", 1)

    saved_group = GroupResult.objects.get(taskset_id=ids["group"])
    assert_recent(saved_group.date_done)
    assert [rows[ids[f"member{i}"]].status for i in range(3)] == ["SUCCESS"] * 3

    changelist = admin_client.get(reverse("admin:celery_sa_taskresult_changelist"))
    assert changelist.status_code == 200
    for task_id in task_ids:
        assert task_id in changelist.text
    page = admin_client.get(reverse("admin:celery_sa_taskresult_change", args=[failed.pk]))
    assert page.status_code == 200
    assert "ZeroDivisionError" in page.text
    groups = admin_client.get(reverse("admin:celery_sa_groupresult_changelist"))
    assert ids["group"] in groups.text
    # A member's page links to its group, the group's page to every member.
    member = rows[ids["member0"]]
    member_page = admin_client.get(reverse("admin:celery_sa_taskresult_change", args=[member.pk]))
    group_url = reverse("admin:celery_sa_groupresult_change", args=[saved_group.pk])
    assert f'<a href="{group_url}">{ids["group"]}</a>' in member_page.text
    group_page = admin_client.get(group_url).text
    for index in range(3):
        task = rows[ids[f"member{index}"]]
        task_url = reverse("admin:celery_sa_taskresult_change", args=[task.pk])
        assert f'<a href="{task_url}">{task.task_id}</a>' in group_page
    # Values are decoded with the result serializer and pretty-printed.
    added_page = admin_client.get(reverse("admin:celery_sa_taskresult_change", args=[added.pk]))
    assert '<pre class="celery-sa-value"' in added_page.text
    assert "[\n  2,\n  3\n]" in added_page.text


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("redis", marks=pytest.mark.services("redis")),
        pytest.param("rabbitmq", marks=pytest.mark.services("rabbitmq")),
    ],
)
def test_real_brokers_deliver_to_the_worker(
    broker: str, embedded_result_db: ResultDB, tmp_path: Path
) -> None:
    url = embedded_result_db.url
    task_id = run_task(tmp_path, url, service_url(broker), "project.tasks.add", (20, 22))
    row = TaskResult.objects.get(task_id=task_id)
    assert (row.status, stored_value(row.result)) == ("SUCCESS", 42)


CUSTOM_NAMES = {"task": "qc_celery_taskmeta", "group": "qc_celery_tasksetmeta"}


@pytest.mark.parametrize("table_names", [CUSTOM_NAMES], indirect=True)
def test_custom_table_names_are_written_by_celery_and_read_by_the_admin(
    table_names: dict[str, str],
    result_db: ResultDB,
    sqla_broker: str,
    tmp_path: Path,
    admin_client: Client,
) -> None:
    assert TaskResult._meta.db_table == "qc_celery_taskmeta"
    with running_worker(
        tmp_path,
        result_url=result_db.url,
        broker_url=sqla_broker,
        CELERY_DATABASE_TABLE_NAMES="task=qc_celery_taskmeta,group=qc_celery_tasksetmeta",
    ) as worker:
        ids = send_demo_tasks(sqla_broker, result_db.url, worker, table_names=table_names)
        wait_for_results([ids["add"]], worker)
    assert TaskResult.objects.get(task_id=ids["add"]).status == "SUCCESS"
    assert GroupResult.objects.filter(taskset_id=ids["group"]).exists()
    response = admin_client.get(reverse("admin:celery_sa_taskresult_changelist"))
    assert ids["add"] in response.text


@pytest.mark.parametrize("database", SCHEMA_DATABASES)
def test_custom_schemas_are_written_by_celery_and_read_by_the_admin(
    database: str, sqla_broker: str, tmp_path: Path, admin_client: Client
) -> None:
    _, alias, _ = RESULT_DBS[database]
    schema = tagged("test_celery_sa_results")
    schemas = {"task": schema, "group": schema}
    with connections[str(alias)].cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    try:
        with (
            override_settings(CELERY_DATABASE_TABLE_SCHEMAS=schemas),
            fresh_result_db(database) as result_db,
        ):
            assert schema in TaskResult._meta.db_table
            task_id = run_task(
                tmp_path,
                result_db.url,
                sqla_broker,
                "project.tasks.add",
                (3, 4),
                conf={"database_table_schemas": schemas},
                CELERY_DATABASE_TABLE_SCHEMAS=f"task={schema},group={schema}",
            )
            row = TaskResult.objects.get(task_id=task_id)
            assert stored_value(row.result) == 7
            response = admin_client.get(reverse("admin:celery_sa_taskresult_changelist"))
            assert task_id in response.text
    finally:
        drop = "DROP SCHEMA {} CASCADE" if database == "postgresql" else "DROP SCHEMA {}"
        with connections[str(alias)].cursor() as cursor:
            cursor.execute(drop.format(schema))


def test_rows_without_the_extended_columns_render_in_the_admin(
    result_db: ResultDB, sqla_broker: str, tmp_path: Path, admin_client: Client
) -> None:
    task_id = run_task(
        tmp_path,
        result_db.url,
        sqla_broker,
        "project.tasks.divide",
        (1, 0),
        conf={"result_extended": False},
        CELERY_RESULT_EXTENDED="false",
    )
    row = TaskResult.objects.get(task_id=task_id)
    assert (row.status, row.name, row.worker, row.args) == ("FAILURE", None, None, None)
    listing = admin_client.get(reverse("admin:celery_sa_taskresult_changelist"))
    assert task_id in listing.text
    page = admin_client.get(reverse("admin:celery_sa_taskresult_change", args=[row.pk]))
    assert "ZeroDivisionError" in page.text
