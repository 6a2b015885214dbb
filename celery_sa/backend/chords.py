"""Native chords: a counter in the database instead of ``celery.chord_unlock`` polling.

``celery_sa_chord`` has a row per unfinished chord (its size once the header is sent, its
callback, and when and by whom the callback was claimed); ``celery_sa_chord_part`` a row
per header task that has returned, keyed by the task id, so a redelivered or twice-stored
task is counted once. A header task's part is written in the transaction that stores its
result (:func:`part_row`), so no stored result goes uncounted: a process lost between the
two would leave one, and Celery 5.7 acks, rather than runs again, a task whose pool child
was lost after its success was stored. Each returning part then counts in a new
transaction: the last part to commit always sees every part. Of the parts that see the
chord complete, one claims it (an ``UPDATE … WHERE date_fired IS NULL`` only one can win,
committed before the callback is sent) and sends the callback; then the chord's rows are
deleted. Every step is retried under the backend's budget and is idempotent: a claim whose
commit failed is recognised as one's own by ``claimed_by`` by the retry; a chord whose
callback is sent is never a reason to run its claimant again. What no returning part will
finish (a complete chord nobody claimed, a claimant lost) is the sweep's
(:mod:`celery_sa.backend.sweep`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from celery import states
from celery.exceptions import ChordError
from celery.result import GroupResult, allow_join_result
from celery.utils.functional import _regen
from sqlalchemy import Connection, Table, func, select, update
from sqlalchemy import delete as sql_delete

from celery_sa.backend import members
from celery_sa.backend.retries import RETRYABLE, one_line
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
    def save_group_row(self, group_id: str, result: Any) -> Any: ...
    def exception_to_python(self, exc: Any) -> Any: ...
    def chord_error_from_stack(self, callback: Any, exc: Any = None) -> Any: ...
    def encode(self, data: Any) -> Any: ...
    def decode(self, payload: Any) -> Any: ...


def utcnow() -> datetime:
    """The chord tables' times: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def register(backend: ChordBackend, header_result_args: Any, body: Any) -> None:
    """Start counting the chord whose header is about to be sent, keeping its callback
    (``body``) for the sweep."""
    group_id, results = header_result_args[0], header_result_args[1]
    store = backend.store
    # A lazy header's task ids are not known yet: nothing to record.
    header = None if isinstance(results, _regen) else backend.app.GroupResult(*header_result_args)
    row = {"group_id": group_id, "date_created": utcnow(), "callback": _encoded(backend, body)}
    with store.engine.begin() as connection:
        # The header's tasks, for the admin's chord and group pages, and the counter, in
        # one transaction.
        if header is not None and store.keeps_members:
            members.write_members(connection, store, group_id, header)
        # An upsert: set_size may have made the row (it keeps its size).
        connection.execute(store.vendor.writes.upsert(store.tables.chord, row, "group_id"))
    if header is not None and (store.saves_groups or _nested(header)):
        # Saved as a group too, for the admin's group list; a header with groups in it
        # gives the callback their results nested as they were (as the Redis backend).
        backend.save_group_row(group_id, header)


def set_size(store: ResultStore, group_id: str, chord_size: int) -> None:
    """Record the header's size (Celery knows it once it has sent all but the last task)."""
    chord = store.tables.chord
    row = {"group_id": group_id, "chord_size": chord_size, "date_created": utcnow()}
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


def part_row(request: Any, task_id: str, state: str) -> dict[str, Any] | None:
    """The part row of ``request``'s task when it is a chord's header task that has
    finished (``state`` is a ready state: success, failure, revoked), else None."""
    group_id = getattr(request, "group", None)
    if state not in states.READY_STATES or not group_id or not getattr(request, "chord", None):
        return None
    return {
        "group_id": group_id,
        "task_id": task_id,
        "group_index": getattr(request, "group_index", None),
        "date_done": utcnow(),
    }


def part_returned(backend: ChordBackend, request: Any) -> None:
    """A header task finished (or failed): count it; the last one sends the callback."""
    group_id, task_id = request.group, request.id
    if not group_id or not task_id:
        return
    part = part_row(request, task_id, states.SUCCESS)
    # Recorded with the result already, unless the task stores none (ignore_result).
    if part is not None and not getattr(request, "celery_sa_part_recorded", False):
        backend.retrying(_record_part, backend.store, part)
    claim = Claim(group_id, claimant=task_id)
    if not backend.retrying(claim.take, backend, late_part=task_id):
        return
    callback = backend.app.signature(request.chord)
    if claim.inherited:
        # Another run of this task claimed it: one requeued or lost before it sent the
        # callback, or one still running (a duplicate delivery): nothing tells them apart,
        # so the callback is not sent again. Once it has a result, the chord is forgotten.
        if backend.retrying(has_result, backend.store, callback.id):
            _forget_sent(backend, group_id)
        else:
            logger.warning(
                "Chord %r was claimed by another run of %s: its callback is not sent again",
                group_id,
                task_id,
            )
        return
    fire(backend, claim, callback)


def _record_part(store: ResultStore, part: dict[str, Any]) -> None:
    with store.engine.begin() as connection:
        connection.execute(store.vendor.writes.insert_missing(store.tables.part, part))


@dataclass
class Claim:
    """One attempt to claim a complete chord: ``UPDATE … SET date_fired, claimed_by WHERE
    date_fired IS NULL`` commits before the callback is sent, so only one sender wins. A
    commit that failed may have happened: taken again, the claim is recognised as this
    attempt's own by ``claimed_by``, and sent once. A claim ``claimed_by`` another run of
    the same task is ``inherited``: that run may have ended before sending the callback, or
    may be sending it now."""

    group_id: str
    claimant: str
    tried: bool = False
    inherited: bool = False
    values: list[Any] | None = None
    error: ChordError | None = None

    def take(self, backend: ChordBackend, late_part: str | None = None) -> bool:
        """Whether this attempt holds the claim of a complete chord, with the header's
        values (or the error to fail the callback with) read; or, ``inherited``, whether
        another run of the same task holds it (nothing read)."""
        store = backend.store
        chord, part = store.tables.chord, store.tables.part
        with store.engine.connect() as connection:
            row = connection.execute(
                select(chord.c.chord_size, chord.c.date_fired, chord.c.claimed_by).where(
                    chord.c.group_id == self.group_id
                )
            ).first()
            if row is None:
                if late_part is not None:
                    # Registered before its header was sent, so: done already (a late
                    # redelivery), or a chord Celery's backend runs with chord_unlock.
                    connection.execute(
                        sql_delete(part).where(
                            part.c.group_id == self.group_id, part.c.task_id == late_part
                        )
                    )
                    connection.commit()
                return False
            if row.date_fired is not None:
                if row.claimed_by != self.claimant:
                    return False
                self.inherited = not self.tried
                if self.inherited:
                    return True  # never sent by this run: no header to read
            elif row.chord_size is None or _parts(connection, part, self.group_id) < row.chord_size:
                return False
        # With this connection given back: reading the header takes connections of its own,
        # and holding one while waiting for another lets as many threads as the pool (or a
        # transaction pooler's server pool) has connections wait for each other for good.
        self._read_header(backend)
        if row.date_fired is None and not self._claimed(store):
            return False
        return True

    def _read_header(self, backend: ChordBackend) -> None:
        """Join the header's results (one query), or keep the
        :class:`~celery.exceptions.ChordError` naming the header task that failed."""
        header = backend.restore_group(self.group_id, cache=False)
        try:
            if header is None or not _nested(header):
                with backend.store.engine.connect() as connection:
                    self.values = _header_values(backend, self.group_id, connection)
            else:
                self.values = _joined(backend, header)
        except ChordError as error:
            self.error = error

    def _claimed(self, store: ResultStore) -> bool:
        chord = store.tables.chord
        self.tried = True
        with store.engine.begin() as connection:
            claimed = connection.execute(
                update(chord)
                .where(chord.c.group_id == self.group_id, chord.c.date_fired.is_(None))
                .values(date_fired=utcnow(), claimed_by=self.claimant)
            ).rowcount
        return bool(claimed == 1)


def fire(backend: ChordBackend, claim: Claim, callback: Any) -> None:
    """Send the callback of a chord ``claim`` holds (or fail it with the header's error),
    then forget the chord."""
    error = claim.error
    if error is None:
        try:
            callback.delay(claim.values)
        except Exception as exc:
            logger.exception("Chord %r: sending its callback failed", claim.group_id)
            error = ChordError(f"Callback error: {exc!r}")
    if error is not None:
        logger.error("Chord %r raised: %s", claim.group_id, error)
        try:
            raise error  # Celery stores the failure with the traceback being handled
        except ChordError:
            backend.chord_error_from_stack(callback, error)
    _forget_sent(backend, claim.group_id)


def _forget_sent(backend: ChordBackend, group_id: str) -> None:
    """Forget a chord whose callback is sent. Past the budget this does not raise: the task
    would run again for a callback that is sent; the sweep forgets the chord once the
    callback has a result."""
    try:
        backend.retrying(forget, backend.store, group_id)
    except RETRYABLE as exc:
        logger.warning(
            "Chord %r: its callback is sent; forgetting the chord failed (%s), the sweep will",
            group_id,
            one_line(exc),
        )


def _parts(connection: Connection, part: Table, group_id: str) -> int:
    return int(
        connection.execute(
            select(func.count()).select_from(part).where(part.c.group_id == group_id)
        ).scalar_one()
    )


def _encoded(backend: ChordBackend, value: Any) -> bytes:
    encoded = backend.encode(value)
    return encoded if isinstance(encoded, bytes) else str(encoded).encode()


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


def _nested(header: GroupResult) -> bool:
    return any(isinstance(result, GroupResult) for result in header.results)


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


def has_result(store: ResultStore, task_id: str | None) -> bool:
    """Whether the task ``task_id`` (a chord's callback) has a row: it has run, or (with
    ``sa_track_sent``) was recorded as sent."""
    task = store.task
    with store.engine.connect() as connection:
        found = connection.execute(select(task.c.id).where(task.c.task_id == task_id)).first()
    return found is not None


def forget(store: ResultStore, group_id: str) -> None:
    chord, part = store.tables.chord, store.tables.part
    with store.engine.begin() as connection:
        connection.execute(sql_delete(part).where(part.c.group_id == group_id))
        connection.execute(sql_delete(chord).where(chord.c.group_id == group_id))


def cleanup(store: ResultStore, expires: timedelta) -> int:
    """Delete the counters of chords started more than ``expires`` ago (a header task
    lost for good) and parts recorded after their chord was done."""
    with store.engine.begin() as connection:
        return expired(connection, store.tables, utcnow() - expires, delete=True)
