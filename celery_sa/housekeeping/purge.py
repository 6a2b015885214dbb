"""Deleting old results in small transactions.

Celery's own ``backend_cleanup`` is one ``DELETE ... WHERE date_done < ...``: one transaction
over the whole range, a table scan on MySQL, every scanned row locked until the end. Here
each batch is one ``DELETE`` of a range that holds at most ``batch_size`` rows: a range of
primary keys (ids grow with time, so expired rows are the start of the table), or for a
status or name selection a range of its index from where the previous batch ended. Each
checks the age again (a row Celery stored anew meanwhile stays) and commits on its own, so
stopping between batches loses nothing and running again carries on. The attempts of the
tasks a batch deletes (celery_sa's backend keeps them) go in the same transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import states
from django.db import connections, models, transaction
from django.db.models import Max, Min
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from celery_sa.conf import app_settings
from celery_sa.db import adapters
from celery_sa.durations import parse_age
from celery_sa.housekeeping.own_tables import (
    attempts_of,
    chord_counters,
    delete_attempts_of,
    expiring_members,
    keeps_attempts,
    orphaned_attempts,
)
from celery_sa.keyset import SortKey, beyond
from celery_sa.models import GroupResult, TaskResult

DEFAULT_BATCH_SIZE = 5_000
MAX_BATCH_SIZE = 10_000
# Two streams of batches: one leaves a server waiting on each commit; measured with
# bench/purge_1m.py on MariaDB, two take about 0.65x the time of one.
DEFAULT_JOBS = 2
MAX_JOBS = 8
KNOWN_STATES = tuple(sorted({*states.ALL_STATES, "REJECTED", "IGNORED"}))
BY_DATE = [
    SortKey("date_done", descending=False, nullable=True),
    SortKey("id", descending=False, nullable=False),
]
BY_ID = [SortKey("id", descending=False, nullable=False)]


@dataclass(frozen=True)
class PurgeOptions:
    """What to delete: results done more than ``older_than`` ago, optionally only some
    statuses or task names, the group results too, and rows that have no ``date_done``."""

    older_than: timedelta
    statuses: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    groups: bool = True
    undated: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    jobs: int = DEFAULT_JOBS

    @classmethod
    def parse(
        cls,
        older_than: str | timedelta | None = None,
        *,
        statuses: Iterable[str] = (),
        names: Iterable[str] = (),
        groups: bool = True,
        undated: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        jobs: int = DEFAULT_JOBS,
    ) -> PurgeOptions:
        """Options as a user gives them; ``ValueError`` says what is wrong.

        ``older_than`` defaults to ``CELERY_RESULT_EXPIRES``; ``statuses`` and ``names``
        may be lists or comma-separated strings.
        """
        age = purge_age(older_than)
        wanted = known_statuses(statuses)
        check_limits(batch_size, jobs)
        chosen_names = tuple(dict.fromkeys(comma_separated(names)))
        return cls(
            older_than=age,
            statuses=wanted,
            names=chosen_names,
            # Groups have neither a status nor a name: a filtered purge leaves them alone.
            groups=groups and not wanted and not chosen_names,
            undated=undated,
            batch_size=batch_size,
            jobs=jobs,
        )


def purge_age(older_than: str | timedelta | None) -> timedelta:
    """The age given, or ``CELERY_RESULT_EXPIRES``."""
    if older_than is not None:
        return older_than if isinstance(older_than, timedelta) else parse_age(older_than)
    age = app_settings.result_expires
    if age is None:
        raise ValueError(
            _(
                "CELERY_RESULT_EXPIRES is not set (or 0): say how old results must "
                "be, e.g. --older-than 7d"
            )
        )
    return age


def known_statuses(statuses: Iterable[str]) -> tuple[str, ...]:
    """The states named, upper-cased, each once, in order; ``ValueError`` for an unknown one."""
    wanted = tuple(dict.fromkeys(s.strip().upper() for s in comma_separated(statuses)))
    unknown = [status for status in wanted if status not in KNOWN_STATES]
    if unknown:
        message = ngettext(
            # Translators: unknown lists the states given, quoted; known the valid ones.
            "unknown status %(unknown)s: use one of %(known)s",
            "unknown status %(unknown)s: use one of %(known)s",
            len(unknown),
        )
        raise ValueError(
            message % {"unknown": ", ".join(map(repr, unknown)), "known": ", ".join(KNOWN_STATES)}
        )
    return wanted


def check_limits(batch_size: int, jobs: int) -> None:
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(
            _("the batch size must be between 1 and %(max)s") % {"max": f"{MAX_BATCH_SIZE:,}"}
        )
    if not 1 <= jobs <= MAX_JOBS:
        raise ValueError(_("the number of jobs must be between 1 and %(max)s") % {"max": MAX_JOBS})


@dataclass
class PurgeResult:
    """What a purge deleted (or, in a dry run, would delete)."""

    cutoff: datetime
    tasks: int = 0
    groups: int = 0
    undated: int = 0
    """Of ``tasks``: rows without a ``date_done`` (only with ``undated``)."""
    undated_kept: int = 0
    """Rows without a ``date_done`` left alone (without ``undated``)."""
    chords: int = 0
    """Counters of chords (celery_sa's backend) begun before the cutoff, never finished."""
    attempts: int = 0
    """Attempts of retried tasks (celery_sa's backend): those of the tasks deleted, and with
    the groups those left without their task."""
    members: int = 0
    """Member rows of the groups deleted (celery_sa's backend)."""
    batches: int = 0
    interrupted: bool = False
    seconds: float = field(default=0.0, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "tasks": self.tasks,
            "groups": self.groups,
            "undated": self.undated,
            "undated_kept": self.undated_kept,
            "chords": self.chords,
            "attempts": self.attempts,
            "group_members": self.members,
            "batches": self.batches,
            "interrupted": self.interrupted,
        }


def comma_separated(values: Iterable[str] | str) -> list[str]:
    """``["a,b", "c"]`` or ``"a, b"`` -> the names, in order."""
    items = [values] if isinstance(values, str) else list(values)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


@dataclass(frozen=True)
class Stream:
    """Rows to delete one batch after another, on a connection of their own: along
    ``ordering``'s index, or (``ordering`` None) in primary-key ranges within ``span``."""

    queryset: models.QuerySet[Any]
    ordering: list[SortKey] | None
    undated: bool = False
    span: tuple[int, int] | None = None
    """Of a primary-key stream: the ids it covers (see :func:`split_by_id`)."""
    attempts: bool = False
    """Of a task stream: its rows' attempts go with them, in the same transactions."""


def streams(options: PurgeOptions, cutoff: datetime, *, attempts: bool = False) -> list[Stream]:
    """What to delete. Everything older than the cutoff goes in primary-key order: ids
    grow with time, so old rows sit at the start of the table and are deleted page by
    page. A selection goes along its own index: one stream per name (the name/date_done
    index) or per status (the status/date_done index). With ``attempts`` the tasks'
    attempts go with them."""
    expired: models.QuerySet[Any] = TaskResult.objects.filter(date_done__lt=cutoff)
    if options.statuses:
        expired = expired.filter(status__in=options.statuses)
    if options.names:
        found = [Stream(expired.filter(name=name), BY_DATE) for name in options.names]
    elif len(options.statuses) > 1:
        found = [Stream(expired.filter(status=status), BY_DATE) for status in options.statuses]
    elif options.statuses:
        found = [Stream(expired, BY_DATE)]
    else:
        found = [Stream(expired, None)]
    if options.undated:
        found.append(Stream(undated_rows(options), BY_ID, undated=True))
    found = [replace(stream, attempts=attempts) for stream in found]
    if options.groups:
        found.append(Stream(GroupResult.objects.filter(date_done__lt=cutoff), None))
    return found


def count(options: PurgeOptions, *, now: datetime | None = None) -> PurgeResult:
    """What :func:`purge` would delete, counted (``COUNT`` over index ranges)."""
    result = PurgeResult(cutoff=(now or timezone.now()) - options.older_than)
    attempts = keeps_attempts(TaskResult.objects.db)
    for stream in streams(options, result.cutoff, attempts=attempts):
        result_add(result, stream, stream.queryset.count())
        if stream.attempts:
            result.attempts += attempts_of(stream.queryset)
    if not options.undated:
        result.undated_kept = undated_rows(options).count()
    if options.groups:
        result.chords = chord_counters(result.cutoff, delete=False)
        result.attempts += orphaned_attempts(result.cutoff, delete=False)
        result.members = expiring_members(result.cutoff, delete=False)
    return result


def purge(
    options: PurgeOptions,
    *,
    now: datetime | None = None,
    on_batch: Callable[[int], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> PurgeResult:
    """Delete what ``options`` select, at most ``options.batch_size`` rows a transaction,
    in ``options.jobs`` parallel streams of batches (one on SQLite).

    ``on_batch`` is called with the number of rows each committed batch deleted; when
    ``stop`` says so, every stream ends after its batch in progress, with ``interrupted``
    set. A ``KeyboardInterrupt`` does the same (with one stream, it rolls the batch in
    progress back). Running it again carries on.
    """
    started = timezone.now()
    result = PurgeResult(cutoff=(now or started) - options.older_than)
    stopping = threading.Event()
    run = stream_runner(result, options.batch_size, on_batch, stop, stopping)
    try:
        attempts = keeps_attempts(TaskResult.objects.db)
        todo = split_by_id(streams(options, result.cutoff, attempts=attempts), options.jobs)
        operations = adapters.get_operations(connections[TaskResult.objects.db])
        if options.jobs == 1 or operations.single_writer or len(todo) == 1:
            one_by_one(run, todo, stopping)
        else:
            in_parallel(run, todo, options.jobs, stopping)
        if not stopping.is_set():
            after_batches(options, result)
    except KeyboardInterrupt:
        stopping.set()
    result.interrupted = stopping.is_set()
    result.seconds = (timezone.now() - started).total_seconds()
    return result


def stream_runner(
    result: PurgeResult,
    batch_size: int,
    on_batch: Callable[[int], None] | None,
    stop: Callable[[], bool],
    stopping: threading.Event,
) -> Callable[[Stream], None]:
    """What deletes one stream batch by batch, adding to ``result``, until the stream ends
    or ``stop`` or another stream says to stop (then it sets ``stopping`` for the others)."""
    lock = threading.Lock()

    def run(stream: Stream) -> None:
        batches = iter(delete_in_batches(stream, batch_size))
        while not (stop() or stopping.is_set()):
            batch = next(batches, None)  # one batch, deleted and committed
            if batch is None:
                return
            deleted, attempts = batch
            with lock:
                result_add(result, stream, deleted)
                result.attempts += attempts
                result.batches += 1
                if on_batch:
                    on_batch(deleted)
        stopping.set()

    return run


def one_by_one(
    run: Callable[[Stream], None], todo: list[Stream], stopping: threading.Event
) -> None:
    """``run`` each stream in turn, on this thread's connection, until one stops."""
    for stream in todo:
        run(stream)
        if stopping.is_set():
            break


def after_batches(options: PurgeOptions, result: PurgeResult) -> None:
    """Once every batch is done: the rows without a ``date_done`` left alone are counted and,
    with the groups, the counters of chords that never finished deleted, the members of the
    groups deleted, and the attempts whose task was deleted otherwise (by Celery's own
    cleanup, ``forget()``)."""
    if not options.undated:
        result.undated_kept = undated_rows(options).count()
    if options.groups:
        result.chords = chord_counters(result.cutoff, delete=True)
        result.attempts += orphaned_attempts(result.cutoff, delete=True)
        result.members = expiring_members(result.cutoff, delete=True)


def in_parallel(
    run: Callable[[Stream], None], todo: list[Stream], jobs: int, stopping: threading.Event
) -> None:
    """``run`` each stream on a thread (a database connection) of its own, ``jobs`` at a
    time; a Ctrl-C in the main thread lets the batches in progress finish, then stops."""

    def in_thread(stream: Stream) -> None:
        try:
            run(stream)
        finally:
            connections.close_all()  # this thread's connections

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="celery_sa_purge") as pool:
        futures = [pool.submit(in_thread, stream) for stream in todo]
        try:
            for future in futures:
                while not future.done():  # waiting in steps keeps Ctrl-C deliverable
                    futures_wait([future], timeout=0.2)
        except KeyboardInterrupt:
            stopping.set()
            for future in futures:
                future.cancel()
        for future in futures:
            if not future.cancelled():
                future.result()


def split_by_id(found: list[Stream], jobs: int) -> list[Stream]:
    """The streams, each primary-key stream split into ``jobs`` spans of ids."""
    parts = []
    for stream in found:
        if stream.ordering is not None:
            parts.append(stream)
            continue
        highest = stream.queryset.aggregate(highest=Max("pk"))["highest"]
        table = stream.queryset.model._base_manager.using(stream.queryset.db)
        lowest = table.aggregate(lowest=Min("pk"))["lowest"]
        if highest is None or lowest is None:
            continue
        width = -(-(highest - lowest + 1) // jobs)
        parts += [
            replace(stream, span=(start, min(start + width - 1, highest)))
            for start in range(lowest, highest + 1, width)
        ]
    return parts


def delete_in_batches(stream: Stream, batch_size: int) -> Iterable[tuple[int, int]]:
    """Delete ``stream``'s rows a batch at a time; yield each batch's count, and that of the
    attempts that went with it."""
    delete = partial(delete_batch, attempts=stream.attempts)
    if stream.ordering is None:
        assert stream.span is not None
        return delete_id_ranges(stream.queryset, stream.span, batch_size, delete)
    return delete_key_ranges(stream.queryset, stream.ordering, batch_size, delete)


def delete_batch(batch: models.QuerySet[Any], *, attempts: bool) -> tuple[int, int]:
    """Delete ``batch``, and with ``attempts`` its tasks' attempts, in one transaction;
    return how many rows of each."""
    with transaction.atomic(using=batch.db):
        gone = delete_attempts_of(batch) if attempts else 0
        return batch.delete()[0], gone


def delete_id_ranges(
    queryset: models.QuerySet[Any],
    span: tuple[int, int],
    batch_size: int,
    delete: Callable[[models.QuerySet[Any]], tuple[int, int]],
) -> Iterator[tuple[int, int]]:
    """Delete ``queryset`` within the ids ``span`` in ranges ``batch_size`` ids wide (so
    at most that many rows)."""
    table = queryset.model._base_manager.using(queryset.db)
    start: int | None = span[0]
    while start is not None and start <= span[1]:
        end = min(start + batch_size - 1, span[1])
        # The conditions are checked again as the rows are deleted: a row Celery stored
        # anew since (a later date_done) stays.
        yield delete(queryset.filter(pk__gte=start, pk__lte=end))
        # Over a gap in the ids in one step.
        start = table.filter(pk__gt=end).aggregate(lowest=Min("pk"))["lowest"]


def delete_key_ranges(
    queryset: models.QuerySet[Any],
    ordering: list[SortKey],
    batch_size: int,
    delete: Callable[[models.QuerySet[Any]], tuple[int, int]],
) -> Iterator[tuple[int, int]]:
    """Delete ``queryset`` in ranges of at most ``batch_size`` of its rows along
    ``ordering``'s index: each range ends at the key read off the index ``batch_size`` rows
    after the previous one, so no row is walked twice and no list of ids travels."""
    names = [column.name for column in ordering]
    backwards = [column.flipped() for column in ordering]
    key: dict[str, Any] | None = None
    while True:
        todo = queryset
        if key is not None:
            todo = todo.filter(beyond(ordering, key, queryset.db, inclusive=False))
        ahead = todo.order_by(*(column.order_by() for column in ordering)).values(*names)
        last = next(iter(ahead[batch_size - 1 : batch_size]), None)
        if last is None:  # fewer than a batch left: up to the last of them
            last = (
                todo.order_by(*(column.order_by() for column in backwards)).values(*names).first()
            )
            if last is None:
                return
        deleted = delete(todo.filter(beyond(backwards, last, queryset.db, inclusive=True)))
        key = last
        yield deleted


def result_add(result: PurgeResult, stream: Stream, rows: int) -> None:
    if stream.queryset.model is GroupResult:
        result.groups += rows
    else:
        result.tasks += rows
        if stream.undated:
            result.undated += rows


def undated_rows(options: PurgeOptions) -> models.QuerySet[TaskResult]:
    queryset = TaskResult.objects.filter(date_done__isnull=True)
    if options.statuses:
        queryset = queryset.filter(status__in=options.statuses)
    if options.names:
        queryset = queryset.filter(name__in=options.names)
    return queryset
