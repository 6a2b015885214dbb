"""Group pages and a task page's group links over large stored group results: bounded."""

from __future__ import annotations

import tracemalloc
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from celery_sa.conf import configured_tables
from celery_sa.models import GroupResult, TaskResult
from tests.support.databases import ResultDB
from tests.support.rows import insert_into, insert_rows, row

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
MB = 1024 * 1024
DONE = datetime(2026, 1, 2, 3, 4, 5)
TASK_ID = "5a0c2f1e-1b2c-4d3e-8f40-000000000001"


def group(group_id: str, member_ids: list[str], padding: int = 0) -> dict[str, Any]:
    """A group row as Celery's backend stores it (JSON of its GroupResult's tuple), with
    ``padding`` bytes of a huge value in front of its members."""
    members = ", ".join(f'[["{m}", null], null]' for m in member_ids)
    body = f'[["{group_id}", null], [{members}], "{"x" * padding}"]'
    return {"taskset_id": group_id, "result": body.encode(), "date_done": DONE}


def peak_of(call: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_task_page_finds_its_group_reading_at_most_16_mb_of_group_results(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    insert_rows(row(TASK_ID, date_done=DONE))
    # 40 groups of 3 MB saved after it, and its own group: 120 MB if read whole.
    insert_into(
        configured_tables().group, [group(str(uuid.uuid4()), [], 3 * MB) for _ in range(40)]
    )
    own = str(uuid.uuid4())
    insert_into(configured_tables().group, [{**group(own, [TASK_ID]), "date_done": DONE}])
    page = reverse("admin:celery_sa_taskresult_change", args=[TaskResult.objects.get().pk])
    response, peak = peak_of(lambda: admin_client.get(page))
    assert response.status_code == 200
    assert peak < 48 * MB, f"peak {peak / MB:.0f} MB"
    # Its own group, saved last, is read first (newest first) and linked.
    assert f'/change/">{own}</a>' in response.text


def test_a_group_page_links_its_first_1000_members_and_counts_the_rest(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    members = [str(uuid.UUID(int=i)) for i in range(1, 1501)]
    insert_into(configured_tables().group, [group(str(uuid.uuid4()), members, 20 * MB)])
    insert_rows(row(members[0]))
    page = reverse("admin:celery_sa_groupresult_change", args=[GroupResult.objects.get().pk])
    response, peak = peak_of(lambda: admin_client.get(page))
    assert response.status_code == 200
    text = response.text
    assert members[999] in text and members[1000] not in text
    assert "… and at least 500 more" in text
    assert f'{TaskResult.objects.get().pk}/change/">{members[0]}</a>' in text
    assert "20.1 MB: too large to decode here" in text
    assert peak < 32 * MB, f"peak {peak / MB:.0f} MB"
