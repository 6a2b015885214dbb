"""Keyset paging: the condition for "the rows after this one" selects exactly them, whatever
the directions and wherever the database sorts NULLs; which orderings can be paged so; the
anchors page links carry."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, cast

import pytest
from django.db import connections
from django.db.models import F, Q, QuerySet

from celery_sa.admin.pagination import Anchor
from celery_sa.keyset import SortKey, beyond, keyset_ordering
from celery_sa.models import TaskResult

Row = dict[str, Any]
DAY = datetime(2026, 1, 2)
# Ties, NULLs in both nullable columns, ids out of step with the times.
ROWS: list[Row] = [
    {"id": 1, "name": "b", "date_done": DAY.replace(hour=3)},
    {"id": 2, "name": None, "date_done": None},
    {"id": 3, "name": "a", "date_done": DAY.replace(hour=3)},
    {"id": 4, "name": "b", "date_done": None},
    {"id": 5, "name": "a", "date_done": DAY.replace(hour=1)},
    {"id": 6, "name": None, "date_done": DAY.replace(hour=3)},
    {"id": 7, "name": "b", "date_done": DAY.replace(hour=1)},
]
ORDERINGS = [
    [
        SortKey("date_done", descending=True, nullable=True),
        SortKey("id", descending=True, nullable=False),
    ],
    [
        SortKey("date_done", descending=False, nullable=True),
        SortKey("id", descending=False, nullable=False),
    ],
    [
        SortKey("name", descending=False, nullable=True),
        SortKey("date_done", descending=True, nullable=True),
        SortKey("id", descending=False, nullable=False),
    ],
]


def matches(condition: Q, row: Row) -> bool:
    """``condition`` evaluated on ``row`` as SQL would (a comparison with NULL is not true)."""
    results = []
    for child in condition.children:
        if isinstance(child, Q):
            results.append(matches(child, row))
            continue
        lookup, value = cast(tuple[str, Any], child)
        name, _, operator = lookup.partition("__")
        field = row["id" if name == "pk" else name]
        if operator == "isnull":
            results.append((field is None) == value)
        elif operator == "in":
            results.append(field in value)
        elif field is None:
            results.append(False)
        else:
            compare = {"": field.__eq__, "gt": field.__gt__, "gte": field.__ge__}
            compare |= {"lt": field.__lt__, "lte": field.__le__}
            results.append(compare[operator](value))
    found = all(results) if condition.connector == Q.AND else any(results)
    return found != condition.negated


def in_order(ordering: list[SortKey], nulls_first_ascending: bool) -> list[Row]:
    """ROWS sorted as the database sorts them."""

    def compare(a: Row, b: Row) -> int:
        for column in ordering:
            x, y = a[column.name], b[column.name]
            if x == y:
                continue
            if x is None or y is None:
                nulls_first = nulls_first_ascending != column.descending
                return -1 if (x is None) == nulls_first else 1
            return (1 if x > y else -1) * (-1 if column.descending else 1)
        return 0

    return sorted(ROWS, key=functools.cmp_to_key(compare))


@pytest.mark.parametrize("nulls_first_ascending", [True, False], ids=["nulls-low", "nulls-high"])
@pytest.mark.parametrize("ordering", ORDERINGS, ids=["newest", "oldest", "by-name"])
def test_the_rows_beyond_a_key_are_exactly_those_after_it_in_the_lists_order(
    monkeypatch: pytest.MonkeyPatch, ordering: list[SortKey], nulls_first_ascending: bool
) -> None:
    features = connections["default"].features
    monkeypatch.setattr(features, "order_by_nulls_first", nulls_first_ascending)
    listed = [row["id"] for row in in_order(ordering, nulls_first_ascending)]
    backwards = [column.flipped() for column in ordering]
    for position, key in enumerate(in_order(ordering, nulls_first_ascending)):
        after = beyond(ordering, key, "default", inclusive=False)
        assert [row["id"] for row in ROWS if matches(after, row)] == sorted(
            listed[position + 1 :]
        ), key
        onwards = beyond(ordering, key, "default", inclusive=True)
        assert [row["id"] for row in ROWS if matches(onwards, row)] == sorted(listed[position:])
        before = beyond(backwards, key, "default", inclusive=False)
        assert [row["id"] for row in ROWS if matches(before, row)] == sorted(listed[:position])


def test_the_first_column_gets_a_plain_bound_the_index_walk_can_start_from() -> None:
    ordering = ORDERINGS[0]
    condition = beyond(ordering, {"date_done": DAY, "id": 5}, "default", inclusive=False)
    # SQLite sorts NULLs first ascending, so last in this descending list: they stay in.
    assert condition.connector == Q.AND
    assert condition.children[0] == Q(date_done__lte=DAY) | Q(date_done__isnull=True)
    at_null = beyond(ordering, {"date_done": None, "id": 5}, "default", inclusive=False)
    assert at_null.children[0] == ("date_done__isnull", True)


def test_a_sort_key_flips_and_orders() -> None:
    newest = SortKey("date_done", descending=True, nullable=True)
    assert newest.order_by() == "-date_done"
    assert newest.flipped() == SortKey("date_done", descending=False, nullable=True)
    assert newest.flipped().order_by() == "date_done"


def tasks() -> QuerySet[TaskResult]:
    """The task rows, without the manager (it asks the database which columns it has)."""
    return QuerySet(TaskResult)


def test_plain_columns_ending_with_the_key_can_be_paged_by_key() -> None:
    assert keyset_ordering(tasks().order_by("-date_done", "-id")) == [
        SortKey("date_done", descending=True, nullable=True),
        SortKey("id", descending=True, nullable=False),
    ]
    assert keyset_ordering(tasks().order_by("name", "pk")) == [
        SortKey("name", descending=False, nullable=True),
        SortKey("id", descending=False, nullable=False),
    ]


@pytest.mark.parametrize(
    "order_by",
    [
        (),  # unordered
        ("-date_done",),  # not total: ties have no order
        ("id", "-date_done"),  # the key not last
        ("name__length", "id"),  # not a column of the model
    ],
)
def test_other_orderings_are_left_to_the_offset(order_by: tuple[str, ...]) -> None:
    assert keyset_ordering(tasks().order_by(*order_by)) is None


def test_an_expression_in_the_ordering_is_left_to_the_offset() -> None:
    assert keyset_ordering(tasks().order_by(F("name").desc(), "id")) is None


def test_an_anchor_reads_back_what_a_link_wrote() -> None:
    anchor = Anchor(12, 3456)
    assert str(anchor) == "12.3456"
    assert Anchor.parse("12.3456") == anchor
    assert Anchor.parse(str(Anchor(1, 0))) == Anchor(1, 0)


@pytest.mark.parametrize("value", [None, "", "12", "12.", ".5", "a.1", "1.-2", "1.2.3", "-1.2"])
def test_a_malformed_anchor_is_ignored(value: str | None) -> None:
    assert Anchor.parse(value) is None
