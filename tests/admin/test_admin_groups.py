"""Group pages and a task page's group links over large stored group results: bounded."""

from __future__ import annotations

import tracemalloc
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
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


def test_the_group_list_counts_each_groups_tasks_in_a_bounded_number_of_queries(
    result_db: ResultDB, admin_client: Client
) -> None:
    """Groups of 3 members (one failed, one still running, one done) and one of 2,000
    members whose stored result is read in part; then 100 more groups cost no more
    queries than 1."""
    failed, running, done = (str(uuid.uuid4()) for _ in range(3))
    insert_rows(
        row(failed, status="FAILURE"), row(running, status="STARTED"), row(done, status="SUCCESS")
    )
    big = [str(uuid.UUID(int=i)) for i in range(1, 2001)]
    small_id, big_id = str(uuid.uuid4()), str(uuid.uuid4())
    insert_into(
        configured_tables().group, [group(small_id, [failed, running, done]), group(big_id, big)]
    )
    listing = reverse("admin:celery_sa_groupresult_changelist")
    response = admin_client.get(listing)
    assert response.status_code == 200
    shown = {
        group.taskset_id: (
            group.progress.size,
            group.progress.cut,
            group.progress.finished,
            group.progress.failed,
        )
        for group in response.context["cl"].result_list
    }
    # 64 KB of the big group's result hold part of its ids.
    assert shown[small_id] == (3, False, 2, 1)
    size, cut, finished, failures = shown[big_id]
    assert (cut, finished, failures) == (True, 0, 0) and 1_000 < size < 2_000
    text = response.text
    assert f"≥ {size}" in text
    assert (
        '<progress class="celery-sa-progress" max="3" value="2" data-failed="yes">67%</progress>'
        in text
    )

    # The group's page: its members in the group's order, each with its state.
    small = GroupResult.objects.get(taskset_id=small_id)
    page = admin_client.get(reverse("admin:celery_sa_groupresult_change", args=[small.pk])).text
    badges = [
        f'{task_id}</a> <span class="celery-sa-status" data-status="{state}">{state}</span>'
        for task_id, state in ((failed, "FAILURE"), (running, "STARTED"), (done, "SUCCESS"))
    ]
    assert all(badge in page for badge in badges)
    assert [page.index(badge) for badge in badges] == sorted(page.index(b) for b in badges)

    def queries() -> int:
        with CaptureQueriesContext(connections[result_db.alias]) as captured:
            assert admin_client.get(listing).status_code == 200
        return len(captured)

    before = queries()
    insert_into(
        configured_tables().group,
        [group(str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(20)]) for _ in range(98)],
    )
    assert queries() <= before + 2  # 100 groups of 20 members: one more chunk of ids


def test_a_progress_filter_counts_no_further_than_the_page(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    tables = configured_tables()
    ids = [str(uuid.uuid4()) for _ in range(60)]
    insert_into(tables.group, [group(group_id, [f"{group_id}-t"]) for group_id in ids])
    insert_into(
        tables.member,
        [
            {"group_id": group_id, "task_id": f"{group_id}-t", "group_index": 0, "date_done": DONE}
            for group_id in ids
        ],
    )
    url = reverse("admin:celery_sa_groupresult_changelist") + "?progress=unfinished"
    with CaptureQueriesContext(connections["celery_sa"]) as queries:
        response = admin_client.get(url)
    # Each group tested costs a join per task: 51 found, not 60 (nor a thousand).
    assert response.context["cl"].result_count == 51
    assert "more than 50 group results" in response.text
    assert "showall" not in response.text
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(*)" in q["sql"]]
    assert len(counts) == 1 and "LIMIT 51" in counts[0], counts
    assert len(admin_client.get(url + "&p=2").context["cl"].result_list) == 10
