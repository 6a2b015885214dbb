"""celery_sa's result backend: Celery's database backend, one statement per result."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from celery import states
from celery.backends.database import DatabaseBackend as CeleryDatabaseBackend
from celery.exceptions import BackendStoreError, Reject
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.utils.log import get_logger
from kombu.utils.encoding import bytes_to_str
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import set_committed_value

from celery_sa import lifecycle
from celery_sa.backend import attempts, chords, members, pending, requeue, sweep
from celery_sa.backend.retries import RETRYABLE, TimeBoundRetries, seconds
from celery_sa.backend.store import ResultStore, StoreConfig, result_store
from celery_sa.sql.attempts import expired_attempts
from celery_sa.sql.members import expired_members

logger = get_logger(__name__)
lifecycle.connect()
pending.connect()

# Ids per ``IN (…)`` of a bulk read: well below every database's parameter limit.
CHUNK = 900


class DatabaseBackend(TimeBoundRetries, CeleryDatabaseBackend):  # type: ignore[misc]
    """Celery's database result backend, made fast and chord-native.

    Switch it on in Celery's configuration (a worker needs no Django)::

        result_backend = "celery_sa+mysql://user:password@host/db"

    It writes the rows Celery's ``DatabaseBackend`` writes, in the same tables, so stock
    workers, the admin and the housekeeping commands read them. What differs is how:

    - a result is one upsert and a commit (Celery: SELECT, INSERT, UPDATE, COMMIT);
    - one pooled engine per process and database, fork-safe, shared by threads and
      greenlets (Celery: a new engine and connection per operation outside prefork);
    - ``get_many`` reads a whole set in one query per poll, so ``GroupResult.get()`` is one
      query (Celery: one query per task);
    - chords count their finished header tasks in a table, and the last one sends the
      callback: no ``celery.chord_unlock`` polling;
    - each execution's start is kept in ``date_started`` and the time the task was first
      sent in ``date_sent``, written with its result (:mod:`celery_sa.lifecycle`).
    """

    supports_native_join = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conf = self.app.conf
        self.configure_retries(conf)
        interval = conf.get("sa_chord_sweep_interval", sweep.DEFAULT_INTERVAL)
        # 0 turns the chord sweep off (celery_sa.backend.sweep).
        self.chord_sweep_interval = (
            0.0 if interval == 0 else seconds(interval, "sa_chord_sweep_interval")
        )
        # Opt in: a PENDING row for each task published (celery_sa.backend.pending).
        self.track_sent = bool(conf.get("sa_track_sent", False))
        delay = conf.get("sa_track_sent_delay", 0)
        self.track_sent_delay = 0.0 if delay == 0 else seconds(delay, "sa_track_sent_delay")

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Celery's ``store_result``, retried by :meth:`retrying` on every Celery version.

        When the budget runs out in a worker running the task with late acks, it raises
        :class:`~celery.exceptions.Reject` with ``requeue=True``: the worker gives the
        message back to the broker instead of acking a task whose result is lost, and the
        task runs again."""
        attempt = attempts.ended(self.app, task_id, result, traceback, request, state)
        result = self.encode_result(result, state)
        try:
            self.retrying(
                self._store_result, task_id, result, state, traceback, request, attempt, **kwargs
            )
        except RETRYABLE as exc:
            if not self.always_retry:
                raise
            error = BackendStoreError(
                "failed to store result on the backend", task_id=task_id, state=state
            )
            raise self._requeue_or(request, error) from exc
        return result

    def _requeue_or(self, request: Any, error: Exception) -> Exception:
        """What to raise when the budget ran out for ``request``'s task: ``error``; but
        under late acks its message goes back to the broker first (see
        :mod:`celery_sa.backend.requeue`), and nothing of the run is recorded."""
        if not requeue.requeueable(self.app, request):
            return error
        logger.error(
            "Task %s[%s]: %s; its message goes back to the broker to run again",
            getattr(request, "task", None),
            getattr(request, "id", None),
            error,
        )
        # Celery goes on to mark the task as failed: mark_as_failure then does nothing
        # (no result stored, no chord part counted, no errback called).
        request.celery_sa_requeued = True
        if requeue.give_back(request):
            return error
        rejected: Exception = Reject(error, requeue=True)
        return rejected

    def mark_as_failure(self, task_id: str, exc: Any, *args: Any, **kwargs: Any) -> Any:
        request = kwargs.get("request", args[1] if len(args) > 1 else None)
        if not getattr(request, "celery_sa_requeued", False):
            return super().mark_as_failure(task_id, exc, *args, **kwargs)
        if requeue.in_pool_child():
            # Celery before 5.7, in a prefork child: the worker requeues on this Reject.
            raise Reject(exc, requeue=True)
        return None  # rejected already

    # -- the store -----------------------------------------------------------------------

    @cached_property
    def store(self) -> ResultStore:
        """This process's engine and tables for ``self.url`` (looked up once per backend:
        Celery keeps a backend per thread, and the store survives a fork)."""
        conf = self.app.conf
        return result_store(
            StoreConfig(
                url=self.url,
                engine_options=self.engine_options,
                celery_table=self.task_cls.__table__,
                names=conf.database_table_names or {},
                schemas=conf.database_table_schemas or {},
            )
        )

    def ResultSession(self, session_manager: Any = None) -> Session:
        # Every read Celery's backend does itself (a task's meta, groups, forget, cleanup)
        # runs on this process's pooled engine.
        return self.store.sessions()

    # -- writing ----------------------------------------------------------------------

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        attempt: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        store = self.store
        # Celery's own code decides every column's value, so the row is the one it writes.
        row = SimpleNamespace(children=None, stamps=None)
        self._update_result(row, result, state, traceback=traceback, request=request)
        if not hasattr(row, "date_done"):
            # Celery before 5.7 leaves it to a column default (in 5.5 a time computed once,
            # at import): write the time 5.7 writes.
            row.date_done = self.app.now()
        values = {name: getattr(row, name) for name in store.task.c.keys() if hasattr(row, name)}
        values["task_id"] = task_id
        if store.keeps("date_started"):
            started = lifecycle.start_time(request)
            if started is None and state == states.STARTED:
                started = self.app.now()
            if started is not None:
                values["date_started"] = started
        sent = lifecycle.sent_time(request, self.app.timezone)
        if sent is not None and store.keeps("date_sent"):
            values["date_sent"] = sent
        part = chords.part_row(request, task_id, state)
        with store.engine.begin() as connection:
            connection.execute(store.upsert(frozenset(values)), values)
            if attempt is not None and store.keeps_attempts:
                # In the same transaction: a retry's row and its attempt, or neither.
                connection.execute(
                    store.vendor.writes.insert_missing(store.tables.attempt, attempt)
                )
            if part is not None:
                # A chord header task's result and its count, or neither (chords.py).
                connection.execute(store.vendor.writes.insert_missing(store.tables.part, part))
        if part is not None:
            request.celery_sa_part_recorded = True

    def on_task_call(self, producer: Any, task_id: str) -> dict[str, Any]:
        if self.track_sent:
            pending.expect(self, task_id)
        return {}

    def sent_values(self, headers: dict[str, Any], routing_key: str | None) -> dict[str, Any]:
        """The PENDING row of the task the message with ``headers`` carries."""
        store = self.store
        row = pending.sent_row(headers, routing_key, self.app.now())
        values = {name: value for name, value in row.items() if name in store.task.c}
        if store.keeps("date_sent"):
            stamped = SimpleNamespace(**{lifecycle.SENT_HEADER: headers.get(lifecycle.SENT_HEADER)})
            values["date_sent"] = lifecycle.sent_time(stamped, self.app.timezone)
        return values

    def store_sent(self, rows: list[dict[str, Any]]) -> None:
        """Write these PENDING rows (:meth:`sent_values`) in one transaction, each unless
        its task has a row: once, without retries (:mod:`celery_sa.backend.pending`)."""
        store = self.store
        with store.engine.begin() as connection:
            connection.execute(store.insert_missing(frozenset(rows[0])), rows)

    # -- groups: Celery's, under the same retries ---------------------------------------

    def _save_group(self, group_id: str, result: Any) -> Any:
        """Celery's, its tasks first written one row each (:mod:`celery_sa.backend.members`)."""
        if self.store.keeps_members:
            self.retrying(members.save_members, self.store, group_id, result)
        return self.save_group_row(group_id, result)

    def save_group_row(self, group_id: str, result: Any) -> Any:
        """Celery's group row alone (its members written already)."""
        return self.retrying(self._save_group_once, group_id, result)

    def _save_group_once(self, group_id: str, result: Any) -> Any:
        # celery_sa saves every chord's header itself: the sender saving it too (Celery's
        # backend would then save it once) finds it saved, not an IntegrityError.
        try:
            return super()._save_group(group_id, result)
        except IntegrityError:
            if members.group_saved(self.store, group_id):
                return result
            raise

    def _restore_group(self, group_id: str) -> Any:
        return self.retrying(super()._restore_group, group_id)

    def _delete_group(self, group_id: str) -> Any:
        self.retrying(super()._delete_group, group_id)
        if self.store.keeps_members:
            self.retrying(members.delete_members, self.store, group_id)

    def _forget(self, task_id: str) -> Any:
        return self.retrying(super()._forget, task_id)

    # -- reading ----------------------------------------------------------------------

    def _tasks(self, session: Session, *conditions: Any) -> list[Any]:
        """The task rows that match, without the columns the live table lacks."""
        model, missing = self.task_cls, self.store.missing
        query = session.query(model).filter(*conditions)
        query = query.options(*(defer(getattr(model, name)) for name in missing))
        tasks = query.all()
        for task in tasks:
            for name in missing:
                set_committed_value(task, name, None)  # read as None, never loaded
        return tasks

    def _get_task_meta_for(self, task_id: str) -> dict[str, Any]:
        meta: dict[str, Any] = self.retrying(self._read_task_meta, task_id)
        return meta

    def _read_task_meta(self, task_id: str) -> dict[str, Any]:
        with self.ResultSession() as session:
            found = self._tasks(session, self.task_cls.task_id == task_id)
            if found:
                return self._meta(found[0])
        task = self.task_cls(task_id)
        task.status = states.PENDING
        task.result = None
        return self._meta(task)

    def _meta(self, task: Any) -> dict[str, Any]:
        """A row's meta, decoded as Celery's backend decodes it."""
        data = task.to_dict()
        data["result"] = self.stored_value(data["result"])
        for name in ("args", "kwargs", "children"):
            if data.get(name) is not None:
                data[name] = self.decode(data[name])
        stamps = data.pop("stamps", None)
        if stamps is not None:
            info = self.decode(stamps)
            if isinstance(info, dict):
                data["stamped_headers"] = info.get("stamped_headers")
                data.update(info.get("stamps") or {})
        return self.meta_from_decoded(data)  # type: ignore[no-any-return]

    def stored_value(self, stored: Any) -> Any:
        """A ``result`` column's value decoded as Celery's backend decodes it (Celery before
        5.7 stored a pickle the column type itself loads)."""
        decode = getattr(self, "_decode_stored_result", None)
        return stored if decode is None else decode(stored)

    def _ready(self, task_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The metas of those of ``task_ids`` that are finished: one query per
        :data:`CHUNK` ids."""
        ids = list(task_ids)
        ready: dict[str, dict[str, Any]] = {}
        model = self.task_cls
        with self.ResultSession() as session:
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                found = self._tasks(
                    session, model.task_id.in_(chunk), model.status.in_(states.READY_STATES)
                )
                ready.update((task.task_id, self._meta(task)) for task in found)
        return ready

    def get_many(
        self,
        task_ids: Iterable[str],
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_message: Any = None,
        on_interval: Any = None,
        max_iterations: int | None = None,
        READY_STATES: frozenset[str] = states.READY_STATES,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(task_id, meta)`` as each task finishes, reading all that are still
        pending in one query per poll."""
        interval = 0.5 if interval is None else interval
        pending = {bytes_to_str(task_id) for task_id in task_ids}  # type: ignore[no-untyped-call]
        for task_id, cached in self._cached_ready(pending, READY_STATES):
            pending.discard(task_id)
            yield task_id, cached
        waited = 0.0
        iterations = 0
        while pending:
            for task_id, meta in self.retrying(self._ready, pending).items():
                pending.discard(task_id)
                self._received(task_id, meta, on_message)
                yield task_id, meta
            if not pending:
                break
            if timeout is not None and waited >= timeout:
                raise CeleryTimeoutError(f"Operation timed out ({timeout})")
            if on_interval:
                on_interval()
            nap = interval if timeout is None else min(interval, timeout - waited)
            time.sleep(nap)
            waited += nap
            iterations += 1
            if max_iterations and iterations >= max_iterations:
                break

    def _cached_ready(
        self, task_ids: Iterable[str], ready_states: frozenset[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Those of ``task_ids`` whose finished meta this backend has cached."""
        found = ((task_id, self._cache.get(task_id)) for task_id in task_ids)
        return [
            (i, meta) for i, meta in found if meta is not None and meta["status"] in ready_states
        ]

    def _received(self, task_id: str, meta: dict[str, Any], on_message: Any) -> None:
        if meta["status"] == states.SUCCESS:
            self._cache[task_id] = meta
        if on_message is not None:
            on_message(meta)

    # -- chords -----------------------------------------------------------------------

    def apply_chord(self, header_result_args: Any, body: Any, **kwargs: Any) -> None:
        """Register the chord's counter instead of sending ``celery.chord_unlock``."""
        self.ensure_chords_allowed()
        self.retrying(chords.register, self, header_result_args, body)

    def set_chord_size(self, group_id: str, chord_size: int) -> None:
        self.retrying(chords.set_size, self.store, group_id, chord_size)

    def add_to_chord(self, chord_id: str, result: Any) -> None:
        self.retrying(chords.add_part, self.store, chord_id)

    def on_chord_part_return(self, request: Any, state: str, result: Any, **kwargs: Any) -> None:
        try:
            chords.part_returned(self, request)
        except RETRYABLE as exc:
            # Its result is stored, but not counted: run it again (its part and the claim
            # are idempotent), or leave the chord to the sweep and the stuck-chord report.
            raise self._requeue_or(request, exc) from exc

    # -- housekeeping -----------------------------------------------------------------

    def cleanup(self) -> None:
        self.retrying(super().cleanup)
        self.retrying(chords.cleanup, self.store, self.expires)
        if self.store.keeps_attempts:
            self.retrying(self._cleanup_attempts)
        if self.store.keeps_members:
            self.retrying(self._cleanup_members)

    def _cleanup_attempts(self) -> None:
        """The attempts of the tasks cleanup() deleted (aware cutoff: the driver converts it
        as it converts the ``date_done`` written with ``app.now()``)."""
        with self.store.engine.begin() as connection:
            expired_attempts(
                connection, self.store.tables, self.app.now() - self.expires, delete=True
            )

    def _cleanup_members(self) -> None:
        """The members of the groups cleanup() deleted (their times are naive UTC)."""
        cutoff = datetime.now(UTC).replace(tzinfo=None) - self.expires
        with self.store.engine.begin() as connection:
            expired_members(connection, self.store.tables, cutoff, delete=True)
