"""Paging the task list: every page a link leads to holds exactly the rows its number says,
found without walking the index over the rows before it."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from celery_sa.admin import pagination
from celery_sa.admin.tasks import TaskResultAdmin
from celery_sa.db import result_database
from celery_sa.models import TaskResult
from tests.support.databases import ResultDB
from tests.support.rows import insert_rows, row

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
PER_PAGE = 10
ROWS = 125
PAGES = 13
TASK_ID = re.compile(r'class="field-task_id"><a href="[^"]*">([^<]+)</a>')
PAGE_LINK = re.compile(r'<a [^>]*href="(\?[^"]*)"[^>]*>(\d+)</a>')
OFFSET = re.compile(r"\bOFFSET (\d+)", re.IGNORECASE)
ORDERINGS = {
    "newest first": ("", ("-date_done", "-id")),
    # A column header's ordering goes before the default one.
    "by name": ("o=2", ("name", "-date_done", "-id")),
    "failures, oldest first": ("status=FAILURE&o=4", ("date_done", "-date_done", "-id")),
}


@pytest.fixture
def paged_rows(result_db: ResultDB, monkeypatch: pytest.MonkeyPatch) -> ResultDB:
    """125 rows in threes with the same date_done, some without a date or a name; ten a
    page, and every page found the way the admin finds deep ones."""
    start = datetime(2026, 1, 2, 3, 4, 5)
    insert_rows(
        *(
            row(
                f"t-{n:03d}",
                date_done=None if n % 17 == 0 else start - timedelta(seconds=n // 3),
                name=None if n % 13 == 0 else f"app.tasks.t{n % 4}",
                status="FAILURE" if n % 2 else "SUCCESS",
            )
            for n in range(ROWS)
        )
    )
    connection = connections[result_database().alias]
    if connection.vendor != "sqlite":  # fresh statistics: the estimate is the count
        with connection.cursor() as cursor:
            table = TaskResult._meta.db_table
            cursor.execute(f"ANALYZE {'TABLE ' if connection.vendor == 'mysql' else ''}{table}")
    monkeypatch.setattr(TaskResultAdmin, "list_per_page", PER_PAGE)
    monkeypatch.setattr(pagination, "DEFERRED_JOIN_OFFSET", 0)
    return result_db


def visit(client: Client, query: str) -> tuple[list[str], dict[int, str], list[int]]:
    """The task ids on a page, its page links, and the OFFSETs of the SQL it ran."""
    with CaptureQueriesContext(connections[result_database().alias]) as queries:
        response = client.get(reverse("admin:celery_sa_taskresult_changelist") + query)
    assert response.status_code == 200, query
    text = response.text
    assert "?e=1" not in response.get("Location", ""), query
    paginator = text[text.index('<p class="paginator">') :]
    links = {int(number): html.unescape(href) for href, number in PAGE_LINK.findall(paginator)}
    offsets = [int(found) for q in queries for found in OFFSET.findall(q["sql"])]
    return TASK_ID.findall(text), links, offsets


def expected_pages(ordering: tuple[str, ...], **filters: Any) -> list[list[str]]:
    ids = list(
        TaskResult.objects.filter(**filters).order_by(*ordering).values_list("task_id", flat=True)
    )
    return [ids[start : start + PER_PAGE] for start in range(0, len(ids), PER_PAGE)]


@pytest.mark.parametrize("case", ORDERINGS)
@pytest.mark.slow
def test_every_page_link_leads_to_the_rows_of_its_number(
    paged_rows: ResultDB, admin_client: Client, case: str
) -> None:
    query, ordering = ORDERINGS[case]
    filters = {"status": "FAILURE"} if "status" in query else {}
    pages = expected_pages(ordering, **filters)
    estimated = not filters and paged_rows.name != "sqlite"
    first, links, _ = visit(admin_client, f"?{query}")
    assert first == pages[0]
    seen = {f"?{query}"}
    todo = list(links.items())
    while todo:
        number, href = todo.pop()
        if href in seen:
            continue
        seen.add(href)
        ids, links, offsets = visit(admin_client, href)
        assert ids == pages[number - 1], (href, ids)
        if "_anchor" in href or (estimated and number > len(pages) / 2):
            # From an anchor or from the end: never more than three pages walked.
            assert max(offsets, default=0) <= 3 * PER_PAGE, (href, offsets)
        todo.extend(links.items())
    reached = {int(re.search(r"p=(\d+)", href).group(1)) for href in seen if "p=" in href}  # type: ignore[union-attr]
    assert reached | {1} == set(range(1, len(pages) + 1))
    assert sum("_anchor" in href for href in seen) > len(pages)


def test_a_page_number_typed_in_walks_the_index_and_still_shows_its_rows(
    paged_rows: ResultDB, admin_client: Client
) -> None:
    pages = expected_pages(("-date_done", "-id"))
    ids, _, offsets = visit(admin_client, "?p=6")
    assert ids == pages[5]
    assert 5 * PER_PAGE in offsets


def test_a_stale_or_broken_anchor_falls_back_to_the_offset(
    paged_rows: ResultDB, admin_client: Client
) -> None:
    pages = expected_pages(("-date_done", "-id"))
    anchor_pk = TaskResult.objects.get(task_id=pages[4][0]).pk
    ids, _, _ = visit(admin_client, f"?_anchor=5.{anchor_pk}&p=6")
    assert ids == pages[5]
    TaskResult.objects.filter(pk=anchor_pk).delete()
    pages = expected_pages(("-date_done", "-id"))
    for anchor in (f"5.{anchor_pk}", "nonsense", "5.", "-1.-1"):
        ids, links, _ = visit(admin_client, f"?_anchor={anchor}&p=6")
        assert ids == pages[5], anchor
        assert all("nonsense" not in href for href in links.values())


def test_filter_and_search_links_drop_the_anchor(
    paged_rows: ResultDB, admin_client: Client
) -> None:
    _, links, _ = visit(admin_client, "?p=6")
    assert "_anchor=6." in links[7]
    response = admin_client.get(reverse("admin:celery_sa_taskresult_changelist") + links[7])
    text = response.text
    assert 'name="_anchor"' not in text  # the search form's hidden fields
    filter_links = re.findall(r'href="(\?[^"]*status=[^"]*)"', text)
    assert filter_links and all("_anchor" not in link for link in filter_links)


def test_counts_say_what_they_are(
    paged_rows: ResultDB, admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pagination.EstimatedCountPaginator, "count_floor", 20)
    monkeypatch.setattr(pagination.EstimatedCountPaginator, "pages_ahead", 1)
    monkeypatch.setattr(TaskResultAdmin, "list_max_show_all", 10)
    url = reverse("admin:celery_sa_taskresult_changelist")

    def count_line(query: str) -> str:
        text = admin_client.get(url + query).text
        assert "showall" not in text  # never "Show all" for a list of unknown length
        paginator = text[
            text.index('<p class="paginator">') : text.index(
                "</p>", text.index('<p class="paginator">')
            )
        ]
        return " ".join(
            re.sub(r"<a [^>]*>\d+</a>|<span[^>]*>[^<]*</span>|…", " ", paginator[21:]).split()
        )

    # A filtered count stops a little past the page asked for, and grows as you page on.
    assert count_line("?status=FAILURE") == "more than 20 task results"
    assert count_line("?status=FAILURE&p=3") == "more than 40 task results"
    assert count_line("?status=FAILURE&p=6") == "62 task results"
    unfiltered = count_line("")
    if paged_rows.name == "sqlite":  # no statistics to estimate from: counted, capped
        assert unfiltered == "more than 20 task results"
    else:
        assert unfiltered == "about 125 task results"


@pytest.mark.parametrize(
    ("query", "page"), [("p=²", 0), ("_anchor=².1&p=3", 2), ("_anchor=5.٣&p=2", 1)]
)
def test_numbers_in_other_digits_are_no_page_or_anchor(
    paged_rows: ResultDB, admin_client: Client, query: str, page: int
) -> None:
    # str.isdigit() accepts "²" and "٣", which int() refuses: the first page, or the
    # asked-for page without the anchor.
    ids, _, _ = visit(admin_client, f"?{query}")
    assert ids == expected_pages(("-date_done", "-id"))[page]


def test_a_page_number_of_forty_digits_is_answered_as_out_of_range(
    paged_rows: ResultDB, admin_client: Client
) -> None:
    url = reverse("admin:celery_sa_taskresult_changelist")
    response = admin_client.get(f"{url}?p=1{'0' * 40}")
    assert (response.status_code, response["Location"]) == (302, f"{url}?e=1")
