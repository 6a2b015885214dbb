"""Finding the rows after a given row in a list's order ("keyset" or "seek" paging): the
database starts its index walk at that row instead of counting its way there."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, replace
from typing import Any

from django.db import connections
from django.db.models import Q, QuerySet


@dataclass(frozen=True)
class SortKey:
    """One column of a list's ordering."""

    name: str
    _: KW_ONLY
    descending: bool
    nullable: bool

    def flipped(self) -> SortKey:
        return replace(self, descending=not self.descending)

    def order_by(self) -> str:
        return f"-{self.name}" if self.descending else self.name


def keyset_ordering(queryset: QuerySet[Any]) -> list[SortKey] | None:
    """The ordering of ``queryset`` when it can be paged by key: plain columns of the
    model, ending with the primary key (so it is total)."""
    opts = queryset.model._meta
    fields = {field.name: field for field in opts.concrete_fields}
    ordering = []
    for item in queryset.query.order_by:
        if not isinstance(item, str):
            return None
        name = item.lstrip("-")
        field = opts.pk if name == "pk" else fields.get(name)
        if field is None:
            return None
        ordering.append(SortKey(field.name, descending=item.startswith("-"), nullable=field.null))
    if not ordering or ordering[-1].name != opts.pk.name:
        return None
    return ordering


def beyond(ordering: list[SortKey], key: dict[str, Any], using: str, *, inclusive: bool) -> Q:
    """The rows after ``key`` in ``ordering`` (``inclusive``: and the row itself), with
    NULLs where the database sorts them, plus a plain bound on the first column so the
    database can start its index walk at the key."""
    nulls_first_ascending = connections[using].features.order_by_nulls_first
    condition: Q | None = None
    same = Q()
    for column in ordering:
        nulls_first = nulls_first_ascending != column.descending
        step = same & past(column, key[column.name], nulls_first, strict=True)
        condition = step if condition is None else condition | step
        value = key[column.name]
        same &= Q(**{f"{column.name}__isnull": True} if value is None else {column.name: value})
    assert condition is not None
    if inclusive:
        condition |= same
    first = ordering[0]
    nulls_first = nulls_first_ascending != first.descending
    return past(first, key[first.name], nulls_first, strict=False) & condition


def past(column: SortKey, value: Any, nulls_first: bool, *, strict: bool) -> Q:
    """The rows whose ``column`` comes after ``value`` (``strict``: not level with it);
    ``nulls_first``: NULLs come before every value in this direction."""
    isnull = f"{column.name}__isnull"
    if value is None:
        if strict:
            return Q(**{isnull: False}) if nulls_first else Q(pk__in=[])
        return Q() if nulls_first else Q(**{isnull: True})
    lookup = ("lt" if column.descending else "gt") + ("" if strict else "e")
    condition = Q(**{f"{column.name}__{lookup}": value})
    if nulls_first or not column.nullable:
        return condition
    return condition | Q(**{isnull: True})
