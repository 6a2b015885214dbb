"""The chord sweep: what no returning header task will finish.

Every ``sa_chord_sweep_interval`` seconds (Django: ``CELERY_SA_CHORD_SWEEP_INTERVAL``; 60,
0 turns it off) a thread in each worker's main process looks at the unfinished chords:

- a complete chord nobody has claimed (its last part's process was killed between
  recording itself and claiming, or its retries ran out without late acks) is claimed and
  its callback sent, exactly as the last part would have (the claim is one ``UPDATE`` only
  one process wins, sweeping or returning);
- a chord claimed more than ``STALE`` ago whose rows are still there (its claimant was
  lost before it forgot the chord) is forgotten once its callback has a result; until then
  it is reported: the claimant may have been lost before it sent the callback.

Each worker sweeps: the claim keeps them from sending a callback twice.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from sqlalchemy import func, select

from celery_sa.backend import chords
from celery_sa.backend.chords import ChordBackend, Claim

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 60.0
# How long a claimed chord may keep its rows before the sweep looks at its callback: its
# claimant sends and forgets within milliseconds, or retries for the backend's budget.
STALE = timedelta(minutes=5)


@dataclass
class Swept:
    """What one sweep did."""

    fired: int = 0
    forgotten: int = 0
    unsent: int = 0


def sweep(backend: ChordBackend) -> Swept:
    """Fire the complete chords nobody claimed, forget the claimed ones whose callback has
    run, and report those whose callback may never have been sent."""
    swept = Swept()
    store = backend.store
    chord, part = store.tables.chord, store.tables.part
    done = select(part.c.group_id, func.count().label("done")).group_by(part.c.group_id).subquery()
    with store.engine.connect() as connection:
        complete = connection.execute(
            select(chord.c.group_id, chord.c.callback)
            .join(done, done.c.group_id == chord.c.group_id)
            .where(
                chord.c.date_fired.is_(None),
                chord.c.chord_size.is_not(None),
                chord.c.callback.is_not(None),
                done.c.done >= chord.c.chord_size,
            )
        ).all()
        stale = connection.execute(
            select(
                chord.c.group_id, chord.c.callback, chord.c.date_fired, chord.c.claimed_by
            ).where(chord.c.date_fired < chords.utcnow() - STALE, chord.c.callback.is_not(None))
        ).all()
    for group_id, stored in complete:
        claim = Claim(group_id, claimant=f"sweep-{uuid.uuid4()}")
        # Retried as a returning part's claim is: a claim whose commit was lost in a
        # restart is recognised as this one's own, not left to a claimant nobody knows.
        if backend.retrying(claim.take, backend):
            logger.warning("Chord %r was complete but unclaimed: the sweep sends it", group_id)
            chords.fire(backend, claim, _callback(backend, stored))
            swept.fired += 1
    for group_id, stored, fired_at, claimant in stale:
        callback = _callback(backend, stored)
        if chords.has_result(store, callback.id):
            chords.forget(store, group_id)
            swept.forgotten += 1
            continue
        logger.error(
            "Chord %r: its callback %s[%s], claimed at %s UTC by %s, has no result: that "
            "process may have been lost before sending it",
            group_id,
            callback.task,
            callback.id,
            fired_at,
            claimant,
        )
        swept.unsent += 1
    return swept


def _callback(backend: ChordBackend, stored: bytes) -> Any:
    return backend.app.signature(backend.decode(stored))


class Sweeper(threading.Thread):
    """The sweep, every ``interval`` seconds, in a worker's main process."""

    def __init__(self, backend: ChordBackend, interval: float) -> None:
        super().__init__(name="celery_sa chord sweep", daemon=True)
        self.backend, self.interval = backend, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                swept = sweep(self.backend)
            except Exception as exc:  # the database is down: the next sweep tries again
                logger.warning("The chord sweep failed: %s: %s", type(exc).__name__, exc)
                continue
            if swept.fired or swept.forgotten or swept.unsent:
                logger.info("The chord sweep: %s", swept)


def _start(sender: Any = None, **kwargs: Any) -> None:
    backend = getattr(getattr(sender, "app", None), "backend", None)
    interval = getattr(backend, "chord_sweep_interval", 0)
    if backend is None or not interval:
        return
    sweeper = Sweeper(backend, interval)
    sweeper.start()

    def stop(**kwargs: Any) -> None:
        sweeper.stopped.set()

    worker_shutdown.connect(stop, weak=False)


worker_ready.connect(_start, weak=False)
