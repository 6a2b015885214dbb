"""A real worker's group in the group list and on its page (celery_sa's backend, Redis)."""

from __future__ import annotations

import pytest
from celery import Celery, group
from django.test import Client
from django.urls import reverse

from celery_sa.models import GroupResult
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
