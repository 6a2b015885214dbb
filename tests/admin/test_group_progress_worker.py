"""A real worker's group in the group list and on its page (celery_sa's backend, Redis)."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Celery, group
from django.test import Client
from django.urls import reverse

from celery_sa.conf import configured_tables
from celery_sa.models import GroupResult
from tests.support.rows import insert_into
from tests.support.workers import Worker

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

TASKS = "tests.support.backend_tasks"


def test_a_group_with_a_failed_member_shows_its_counts(
    worker_and_client: tuple[Worker, Celery], admin_client: Client
) -> None:
    _, app = worker_and_client
    members = [
        app.signature(f"{TASKS}.add", (1, 1)),
        app.signature(f"{TASKS}.fail", ("no",)),
        app.signature(f"{TASKS}.add", (2, 2)),
    ]
    sent = group(members).apply_async()
    sent.save()
    assert sent.join(timeout=30, propagate=False)[0] == 2
    listing = admin_client.get(reverse("admin:celery_sa_groupresult_changelist"))
    [shown] = listing.context["cl"].result_list
    assert shown.taskset_id == sent.id
    progress = shown.progress
    assert (progress.size, progress.finished, progress.failed) == (3, 3, 1)
    assert progress.by_state == {"SUCCESS": 2, "FAILURE": 1}
    page = admin_client.get(
        reverse("admin:celery_sa_groupresult_change", args=[GroupResult.objects.get().pk])
    ).text
    ids = [result.id for result in sent.results]
    assert [page.index(task_id) for task_id in ids] == sorted(page.index(i) for i in ids)
    assert 'data-status="FAILURE"' in page


def listed(admin_client: Client, query: str) -> list[str]:
    listing = admin_client.get(reverse("admin:celery_sa_groupresult_changelist") + query)
    assert listing.status_code == 200
    return [group.taskset_id for group in listing.context["cl"].result_list]


def test_groups_are_filtered_by_their_tasks_states(
    worker_and_client: tuple[Worker, Celery], admin_client: Client, tmp_path: Path
) -> None:
    _, app = worker_and_client
    failed = group(
        [app.signature(f"{TASKS}.add", (1, 1)), app.signature(f"{TASKS}.fail", ("no",))]
    ).apply_async()
    failed.save()
    fine = group([app.signature(f"{TASKS}.add", (2, 2))]).apply_async()
    fine.save()
    release = tmp_path / "release"
    running = group(
        [app.signature(f"{TASKS}.add", (3, 3)), app.signature(f"{TASKS}.held", (4, str(release)))]
    ).apply_async()
    running.save()
    failed.join(timeout=30, propagate=False)
    fine.join(timeout=30)
    running.results[0].get(timeout=30)
    # A group saved by Celery's own backend has no member rows.
    insert_into(configured_tables().group, [{"taskset_id": "celery-own", "result": b"[]"}])

    assert listed(admin_client, "?progress=failed") == [failed.id]
    assert listed(admin_client, "?progress=unfinished") == [running.id]
    assert sorted(listed(admin_client, "?progress=finished")) == sorted([failed.id, fine.id])
    assert listed(admin_client, "?progress=unrecorded") == ["celery-own"]
    release.touch()
    running.join(timeout=30)
    assert listed(admin_client, "?progress=unfinished") == []
