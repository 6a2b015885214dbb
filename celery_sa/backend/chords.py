"""Native chords: a counter in the database instead of ``celery.chord_unlock`` polling.

``celery_sa_chord`` has a row per unfinished chord (its size once the header is sent, and
when its callback was claimed); ``celery_sa_chord_part`` a row per header task that has
returned, keyed by the task id, so a redelivered or twice-stored task is counted once.
Each returning part records itself and commits, then counts in a new transaction: the
last part to commit always sees every part. Of the parts that see the chord complete, one
claims it (an ``UPDATE … WHERE date_fired IS NULL`` only one can win) and sends the
callback before its claim commits: a process killed in between leaves the chord unclaimed
for the redelivered task to finish. Then the chord's rows are deleted.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from celery import states
from celery.exceptions import ChordError
from celery.result import GroupResult, allow_join_result
from celery.utils.functional import _regen
from sqlalchemy import Connection, func, select, update
from sqlalchemy import delete as sql_delete

from celery_sa.backend.store import ResultStore
from celery_sa.sql.chords import expired

logger = logging.getLogger(__name__)


class ChordBackend(Protocol):
    """What the chord protocol needs of the result backend (celery_sa's DatabaseBackend)."""

    app: Any
    store: ResultStore

    def retrying(self, function: Any, *args: Any, **kwargs: Any) -> Any: ...
    def stored_value(self, stored: Any) -> Any: ...
    def restore_group(self, group_id: str, cache: bool = True) -> Any: ...
    def exception_to_python(self, exc: Any) -> Any: ...
    def chord_error_from_stack(self, callback: Any, exc: Any = None) -> Any: ...


def _now() -> datetime:
    """The chord tables' times: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def register(backend: ChordBackend, header_result_args: Any) -> None:
    """Start counting the chord whose header is about to be sent."""
    group_id, results = header_result_args[0], header_result_args[1]
    # As the Redis backend: a header with groups in it is saved, so the callback gets
    # their results nested as they were.
    if not isinstance(results, _regen) and any(isinstance(r, GroupResult) for r in results):
        backend.app.GroupResult(*header_result_args).save(backend=backend)
    store = backend.store
    row = {"group_id": group_id, "chord_size": None, "date_created": _now()}
    with store.engine.begin() as connection:
        connection.execute(store.vendor.writes.insert_missing(store.tables.chord, row))


def set_size(store: ResultStore, group_id: str, chord_size: int) -> None:
    """Record the header's size (Celery knows it once it has sent all but the last task)."""
    chord = store.tables.chord
    row = {"group_id": group_id, "chord_size": chord_size, "date_created": _now()}
    with store.engine.begin() as connection:
        connection.execute(store.vendor.writes.upsert(chord, row, "group_id"))


def add_part(store: ResultStore, group_id: str) -> None:
    """One more header task (``Task.add_to_chord``)."""
    chord = store.tables.chord
    with store.engine.begin() as connection:
        connection.execute(
            update(chord)
            .where(chord.c.group_id == group_id)
            .values(chord_size=chord.c.chord_size + 1)
        )


def part_returned(backend: ChordBackend, request: Any) -> None:
    """A header task finished (or failed): count it; the last one sends the callback."""
    group_id, task_id = request.group, request.id
    if not group_id or not task_id:
        return
    store = backend.store
    part = {
        "group_id": group_id,
        "task_id": task_id,
        "group_index": request.group_index,
        "date_done": _now(),
    }

    def record() -> None:
        with store.engine.begin() as connection:
            connection.execute(store.vendor.writes.insert_missing(store.tables.part, part))

    backend.retrying(record)
    if backend.retrying(_claim_and_fire, backend, request):
        backend.retrying(_forget_chord, store, group_id)


def _claim_and_fire(backend: ChordBackend, request: Any) -> bool:
    """Send the callback if the chord is complete and nobody has claimed it."""
    store = backend.store
    chord, part = store.tables.chord, store.tables.part
    group_id = request.group
    with store.engine.begin() as connection:
        row = connection.execute(
            select(chord.c.chord_size, chord.c.date_fired).where(chord.c.group_id == group_id)
        ).first()
        if row is None:
            # Registered before its header was sent, so: done already (a late redelivery),
            # or a chord Celery's backend runs with chord_unlock. Nothing to count.
            connection.execute(
                sql_delete(part).where(part.c.group_id == group_id, part.c.task_id == request.id)
            )
            return False
        size = row.chord_size
        if size is None or row.date_fired is not None:  # being sent, or already sent
            return False
        done = connection.execute(
            select(func.count()).select_from(part).where(part.c.group_id == group_id)
        ).scalar_one()
        if done < size:
            return False
        claimed = connection.execute(
            update(chord)
            .where(chord.c.group_id == group_id, chord.c.date_fired.is_(None))
            .values(date_fired=_now())
        ).rowcount
        if claimed != 1:
            return False
        callback = backend.app.signature(request.chord)
        error = _fire(backend, callback, group_id, connection)
    if error is not None:
        # After the commit: failing the callback stores a result, which on SQLite would
        # wait for this transaction's lock.
        logger.error("Chord %r raised: %s", group_id, error)
        try:
            raise error  # Celery stores the failure with the traceback being handled
        except ChordError:
            backend.chord_error_from_stack(callback, error)
    return True


def _fire(
    backend: ChordBackend, callback: Any, group_id: str, connection: Connection
) -> ChordError | None:
    """Join the header's results (one query) and send the callback; or return the
    :class:`~celery.exceptions.ChordError` to fail it with, naming the header task that
    failed."""
    header = backend.restore_group(group_id, cache=False)
    try:
        if header is None:
            values = _header_values(backend, group_id, connection)
        else:
            values = _joined(backend, header)
    except ChordError as error:
        return error
    try:
        callback.delay(values)
    except Exception as exc:
        logger.exception("Chord %r: sending its callback failed", group_id)
        return ChordError(f"Callback error: {exc!r}")
    return None


def _header_values(backend: ChordBackend, group_id: str, connection: Connection) -> list[Any]:
    """The header's results in header order: one query for the status and result of each
    part (the rows are complete: each part stored its result before it was counted)."""
    part, task = backend.store.tables.part, backend.store.task
    rows = connection.execute(
        select(part.c.task_id, task.c.status, task.c.result)
        .select_from(part.outerjoin(task, task.c.task_id == part.c.task_id))
        .where(part.c.group_id == group_id)
        .order_by(part.c.group_index, part.c.task_id)
    ).all()
    values = []
    for task_id, status, stored in rows:
        if status is None:
            raise ChordError(f"Dependency {task_id} has no result (forgotten?)")
        value = backend.stored_value(stored)
        if status in states.PROPAGATE_STATES:
            exc = backend.exception_to_python(value)
            error = ChordError(f"Dependency {task_id} raised {exc!r}")
            error.__cause__ = exc if isinstance(exc, BaseException) else None
            raise error
        values.append(value)
    return values


def _joined(backend: ChordBackend, header: GroupResult) -> list[Any]:
    """A saved header's results, nested as its groups are (as the Redis backend joins)."""
    try:
        with allow_join_result():
            timeout = backend.app.conf.result_chord_join_timeout
            return header.join_native(timeout=timeout, propagate=True)  # type: ignore[no-any-return]
    except Exception as exc:
        culprit = next((r for r in header.results if r.state in states.PROPAGATE_STATES), None)
        error = ChordError(f"Dependency {culprit.id} raised {exc!r}" if culprit else repr(exc))
        error.__cause__ = exc
        raise error from exc


def _forget_chord(store: ResultStore, group_id: str) -> None:
    chord, part = store.tables.chord, store.tables.part
    with store.engine.begin() as connection:
        connection.execute(sql_delete(part).where(part.c.group_id == group_id))
        connection.execute(sql_delete(chord).where(chord.c.group_id == group_id))


def cleanup(store: ResultStore, expires: timedelta) -> int:
    """Delete the counters of chords started more than ``expires`` ago (a header task
    lost for good) and parts recorded after their chord was done."""
    with store.engine.begin() as connection:
        return expired(connection, store.tables, _now() - expires, delete=True)
