"""The chords celery_sa's backend is still counting: how many wait for their header, which
are stuck (waiting longer than ``CELERY_SA_CHORD_STUCK_AFTER``), and what each waits for.

A chord has a row in ``celery_sa_chord`` from the moment its header is sent until its
callback is sent (or it is failed, or expires); each header task that has returned has a row
in ``celery_sa_chord_part``. Chords run by Celery's own backend (``celery.chord_unlock``) leave no
such rows: nothing here can see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from celery_sa.conf import app_settings
from celery_sa.models import Chord

DEFAULT_STUCK_AFTER = timedelta(hours=1)


def stuck_after() -> timedelta:
    """``CELERY_SA_CHORD_STUCK_AFTER`` as a duration (the checks report a wrong one; the
    default stands in for it)."""
    value = app_settings.chord_stuck_after
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = timedelta(seconds=value)
    return value if isinstance(value, timedelta) and value > timedelta(0) else DEFAULT_STUCK_AFTER


def waiting() -> QuerySet[Chord]:
    """The chords whose callback nobody has claimed yet."""
    return Chord.objects.filter(date_fired__isnull=True)


def is_stuck(chord: Chord, now: datetime) -> bool:
    return chord.date_fired is None and now - chord.date_created > stuck_after()


@dataclass(frozen=True)
class WaitingChords:
    """How many chords wait for their header now, how many of them are stuck, and the
    oldest's start."""

    waiting: int
    stuck: int
    oldest_started: datetime | None
    stuck_after: timedelta
    now: datetime

    @property
    def oldest_wait(self) -> float | None:
        """Seconds the oldest waiting chord has waited."""
        if self.oldest_started is None:
            return None
        return max(0.0, (self.now - self.oldest_started).total_seconds())


def waiting_chords() -> WaitingChords | None:
    """The waiting chords now (two index reads of the chord table); None when the table
    cannot be read (made by neither ``celery_sa_tables create`` nor celery_sa's backend)."""
    now = timezone.now()
    after = stuck_after()
    chords = waiting()
    try:
        # A savepoint: inside a page's snapshot, PostgreSQL would end the transaction.
        with transaction.atomic(using=chords.db):
            counts = chords.aggregate(
                waiting=Count("pk"), stuck=Count("pk", filter=Q(date_created__lt=now - after))
            )
            oldest = chords.order_by("date_created").values_list("date_created", flat=True)
            oldest_started = oldest.first()
    except DatabaseError:
        return None
    return WaitingChords(counts["waiting"], counts["stuck"], oldest_started, after, now)
