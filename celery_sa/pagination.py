"""Paging through millions of result rows without ``COUNT(*)`` and without slow deep pages."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# A filtered count stops here: "more than 10,000" is all a person paging needs to know.
COUNT_CAP = 10_000
# From this offset on, rows are found through their ids first ("deferred join"): the
# index walk over the skipped entries reads ids only, never whole rows.
DEFERRED_JOIN_OFFSET = 1_000

ESTIMATES = {
    "mysql": (
        "SELECT TABLE_ROWS FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s"
    ),
    "postgresql": "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
}


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """A paginator whose count is the database's own estimate for an unfiltered list and
    an exact count capped at :data:`COUNT_CAP` for a filtered one."""

    object_list: QuerySet[Any]

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where:
            estimate = estimate_rows(queryset)
            if estimate is not None:
                return estimate
        # Unordered, so the database stops at the cap instead of sorting every match first.
        return queryset.order_by()[: COUNT_CAP + 1].count()

    def page(self, number: Any) -> Page:  # type: ignore[type-arg]
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if bottom < DEFERRED_JOIN_OFFSET:
            return Page(self.object_list[bottom:top], number, self)
        ids = list(self.object_list.values_list("pk", flat=True)[bottom:top])
        return Page(list(self.object_list.filter(pk__in=ids)), number, self)


def estimate_rows(queryset: QuerySet[Any]) -> int | None:
    """The table statistics' row count of ``queryset``'s table (MySQL, PostgreSQL)."""
    connection = connections[queryset.db]
    sql = ESTIMATES.get(connection.vendor)
    if sql is None:
        return None
    table = queryset.model._meta.db_table
    schema, _, name = table.rpartition(".")
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(sql, [schema.strip("`") or None, name.strip("`")])
        else:
            cursor.execute(sql, [table])
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:
        return None
    return int(row[0])
