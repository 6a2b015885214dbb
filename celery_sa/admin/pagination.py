"""Paging through millions of result rows without ``COUNT(*)`` and without slow deep pages.

Three ways to find a page's rows, the cheapest one that applies is used:

- by offset (``LIMIT 50 OFFSET n``), through the ids first from :data:`DEFERRED_JOIN_OFFSET`
  on, for pages near the start;
- from an anchor: every page link the admin renders carries the first row of the page it
  is on (``_anchor=<page>.<id>``), and the linked page is found by its position relative to
  that row ("keyset" paging), so a neighbour of page 10,000 costs what page 2 costs;
- from the end, in reverse order, for the last half of a list whose size is the table
  statistics' estimate: the last page is the oldest rows, whatever the estimate's error.

Only a page number typed into the address, in the middle of a huge list, is left to the
offset: the database must then walk the index over every row before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.paginator import Page, Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

from celery_sa.conf import app_settings
from celery_sa.db import adapters
from celery_sa.keyset import beyond, keyset_ordering

# A filtered count stops a little past the page asked for: "more than 1,000" is all a person
# on page 1 needs to know, and on a column without an index each row counted is a row read.
COUNT_FLOOR = 1_000
COUNT_PAGES_AHEAD = 10
COUNT_CAP = 10_000
# From this offset on, rows are found through their ids first ("deferred join"): the
# index walk over the skipped entries reads ids only, never whole rows.
DEFERRED_JOIN_OFFSET = 1_000
ANCHOR_VAR = "_anchor"
# Longer numbers are no page or id of a table (and int() of a huge one is slow).
MAX_DIGITS = 19
# The admin links the three pages on each side of the current one: those carry an anchor.
ANCHOR_REACH = 3


def is_number(text: str) -> bool:
    """Whether ``text`` is a whole number written in ASCII digits, as int() reads it (it
    refuses the superscripts and other digits str.isdigit() accepts)."""
    return text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS


@dataclass(frozen=True)
class Anchor:
    """The first row (``pk``) of page ``page`` of the list a link was rendered on."""

    page: int
    pk: int

    @classmethod
    def parse(cls, value: str | None) -> Anchor | None:
        page, _, pk = (value or "").partition(".")
        if not (is_number(page) and is_number(pk)):
            return None
        return cls(int(page), int(pk))

    def __str__(self) -> str:
        return f"{self.page}.{self.pk}"


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """A paginator whose count is the database's own estimate for an unfiltered list and
    an exact count capped at :data:`COUNT_CAP` for a filtered one, and whose pages are
    found by offset, from an anchor or from the end, whichever walks fewer rows."""

    object_list: QuerySet[Any]
    anchor: Anchor | None = None
    requested_page = 1
    show_all_limit = 0
    """The admin's list_max_show_all: a capped count stays above it, so that "Show all"
    (every row on one page) is never offered for a list of unknown length."""
    count_floor = COUNT_FLOOR
    pages_ahead = COUNT_PAGES_AHEAD
    """How far a filtered count goes: at least ``count_floor`` rows, and ``pages_ahead``
    pages past the one asked for. A filter whose every row tested costs joins counts no
    further than the page (``0`` and ``0``): "more than 50", and a link to the next page;
    and counts in the page's order (``count_in_order``), along the rows the page read."""
    count_in_order = False
    estimated = False
    """The count is the table statistics' estimate."""
    capped = False
    """The count stopped at the cap: there are more rows."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where:
            estimate = estimate_rows(queryset)
            if estimate is not None:
                self.estimated = True
                return estimate
        ahead = (self.requested_page + self.pages_ahead) * self.per_page
        cap = min(max(self.count_floor, ahead, self.show_all_limit + 1), COUNT_CAP)
        # Unordered, so the database stops at the cap instead of sorting every match first
        # (unless the page's order is an index's); the keys only, not the annotations a
        # page reads (a value's first bytes).
        counted = queryset if self.count_in_order else queryset.order_by()
        found: int = counted.values("pk")[: cap + 1].count()
        self.capped = found > cap
        return found

    def page(self, number: Any) -> Page:  # type: ignore[type-arg]
        number = self.validate_number(number)
        offset = (number - 1) * self.per_page
        if offset < DEFERRED_JOIN_OFFSET:
            return Page(list(self.object_list[offset : offset + self.per_page]), number, self)
        ids = self.ids_near_anchor(number, offset)
        if ids is None:
            ids = self.ids_from_end(offset)
        if ids is None:
            ids = list(
                self.object_list.values_list("pk", flat=True)[offset : offset + self.per_page]
            )
        return Page(list(self.object_list.filter(pk__in=ids)), number, self)

    def ids_near_anchor(self, number: int, offset: int) -> list[Any] | None:
        anchor = self.anchor
        ordering = keyset_ordering(self.object_list)
        if anchor is None or ordering is None:
            return None
        if number >= anchor.page:
            skip, backwards = (number - anchor.page) * self.per_page, False
        else:
            skip, backwards = (anchor.page - number - 1) * self.per_page, True
        if skip >= offset:
            return None
        key = (
            self.object_list.model._base_manager.using(self.object_list.db)
            .filter(pk=anchor.pk)
            .values(*(column.name for column in ordering))
            .first()
        )
        if key is None:  # the anchor row is gone: fall back to the offset
            return None
        if backwards:
            ordering = [column.flipped() for column in ordering]
        queryset = self.object_list.filter(
            beyond(ordering, key, self.object_list.db, inclusive=not backwards)
        ).order_by(*(column.order_by() for column in ordering))
        return list(queryset.values_list("pk", flat=True)[skip : skip + self.per_page])

    def ids_from_end(self, offset: int) -> list[Any] | None:
        size = min(self.per_page, self.count - offset)
        from_end = max(self.count - offset - self.per_page, 0)
        if not self.estimated or from_end >= offset:
            return None
        queryset = self.object_list.reverse()
        return list(queryset.values_list("pk", flat=True)[from_end : from_end + size])


class AnchoredChangeList(ChangeList):
    """A change list whose page links carry the current page's first row as an anchor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Not a filter: the search form and filter links must not carry it.
        self.params.pop(ANCHOR_VAR, None)

    def get_filters_params(self, params: Any = None) -> dict[str, Any]:
        lookups: dict[str, Any] = super().get_filters_params(params)
        lookups.pop(ANCHOR_VAR, None)
        return lookups

    def get_query_string(self, new_params: Any = None, remove: Any = None) -> str:
        new_params = dict(new_params or {})
        target = new_params.get(PAGE_VAR)
        anchor = self.anchor_for(target) if set(new_params) == {PAGE_VAR} else None
        new_params[ANCHOR_VAR] = str(anchor) if anchor else None
        query: str = super().get_query_string(new_params, remove)
        return query

    def anchor_for(self, target: Any) -> Anchor | None:
        """This page's first row, for a link to a deep page near this one."""
        rows = getattr(self, "result_list", None)
        if not isinstance(target, int) or not isinstance(rows, list) or not rows:
            return None
        deep = (target - 1) * self.list_per_page >= DEFERRED_JOIN_OFFSET
        if not deep or abs(target - self.page_num) > ANCHOR_REACH:
            return None
        return Anchor(self.page_num, rows[0].pk)


def estimate_rows(queryset: QuerySet[Any]) -> int | None:
    """The table statistics' row count of ``queryset``'s result table, where the database
    keeps one (MySQL/MariaDB, PostgreSQL once analysed)."""
    connection = connections[queryset.db]
    key = queryset.model.table_key
    return adapters.get_operations(connection).estimate_rows(
        connection, app_settings.table_schema(key), app_settings.table_name(key)
    )
