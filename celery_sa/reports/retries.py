"""Retries by task name and exception, from celery_sa's attempt table: the overview's names
that retry most and the metrics' retry counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, transaction
from django.db.models import Count

from celery_sa.models import TaskAttempt


@dataclass(frozen=True)
class Retried:
    """How often a task name's executions ended in a retry with an exception type."""

    name: str | None
    exception: str | None
    retries: int


def retried(since: datetime, until: datetime, limit: int | None = None) -> list[Retried] | None:
    """The retries that ended in ``[since, until)`` by name and exception, most first (from
    the attempt table's ``(date_done, name, exception)`` index); None when the table cannot
    be read (before ``celery_sa_tables upgrade`` creates it)."""
    attempts = TaskAttempt.objects.filter(date_done__gte=since, date_done__lt=until)
    grouped = (
        attempts.order_by()
        .values_list("name", "exception")
        .annotate(retries=Count("*"))
        .values_list("name", "exception", "retries")
    )
    try:
        # A savepoint: inside a page's snapshot, PostgreSQL would end the transaction.
        with transaction.atomic(using=attempts.db):
            rows = list(grouped)
    except DatabaseError:
        return None
    ranked = sorted(rows, key=lambda row: (-row[2], row[0] or "", row[1] or ""))[:limit]
    return [Retried(name, exception, count) for name, exception, count in ranked]


# The overview counts the window's newest retries only: a week of a busy fleet's attempts
# would cost more than the rest of the page.
RETRY_SAMPLE = 5_000


@dataclass(frozen=True)
class NewestRetries:
    """The retries among the newest ``sampled`` attempts of a window, by name and
    exception; ``complete`` when they are all of the window's."""

    retried: list[Retried]
    sampled: int
    complete: bool


def newest_retries(
    since: datetime, until: datetime, limit: int | None = None, sample: int = RETRY_SAMPLE
) -> NewestRetries | None:
    """:func:`retried` of the newest ``sample`` attempts that ended in ``[since, until)``
    (a walk down the attempt table's ``(date_done, name, exception)`` index, bounded
    whatever the window holds); None when the table cannot be read."""
    attempts = TaskAttempt.objects.filter(date_done__gte=since, date_done__lt=until)
    newest = attempts.order_by("-date_done").values_list("name", "exception")[:sample]
    try:
        with transaction.atomic(using=attempts.db):
            rows = list(newest)
    except DatabaseError:
        return None
    counted = [Retried(name, exception, n) for (name, exception), n in Counter(rows).items()]
    ranked = sorted(counted, key=lambda r: (-r.retries, r.name or "", r.exception or ""))
    return NewestRetries(ranked[:limit], len(rows), len(rows) < sample)
