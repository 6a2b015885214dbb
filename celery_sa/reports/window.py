"""The time window an overview covers and its buckets, in the viewer's time zone.

Bucket edges are local wall-clock times (a day starts at the viewer's midnight), turned into
instants here; the model field turns each instant into the zone Celery stored ``date_done``
in, so every bucket is counted with two index range bounds and no time-zone arithmetic in SQL.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from django.utils import timezone
from django.utils.translation import gettext as _

MAX_SPAN = timedelta(days=366)


@dataclass(frozen=True)
class Step:
    """A bucket width: fixed (minutes, hours) or on the wall clock (3 h and up)."""

    seconds: int
    wall: bool = False

    def floor(self, local: datetime) -> datetime:
        """The bucket edge at or before ``local`` (aware, in the viewer's zone)."""
        local = local.replace(second=0, microsecond=0)
        if self.seconds < 3600:
            return local.replace(minute=local.minute - local.minute % (self.seconds // 60))
        if self.seconds < 86400:
            hours = self.seconds // 3600
            return local.replace(minute=0, hour=local.hour - local.hour % hours)
        midnight = local.replace(minute=0, hour=0)
        if self.seconds == 7 * 86400:
            midnight -= timedelta(days=midnight.weekday())
        return wall_time(midnight.replace(tzinfo=None), local.tzinfo)

    def after(self, edge: datetime) -> datetime:
        """The next bucket edge: a fixed step in real time, or on the clock (a day of a
        daylight-saving change is 23 or 25 hours long)."""
        if not self.wall:
            return (edge.astimezone(UTC) + timedelta(seconds=self.seconds)).astimezone(edge.tzinfo)
        return wall_time(edge.replace(tzinfo=None) + timedelta(seconds=self.seconds), edge.tzinfo)


EARLIEST = datetime(1900, 1, 1)
LATEST = datetime(9000, 1, 1)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def wall_time(naive: datetime, zone: tzinfo | None) -> datetime:
    """The instant a wall-clock time names in ``zone``; a time skipped by a daylight-saving
    change becomes the instant the clock jumped to."""
    return naive.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)


STEPS = tuple(
    Step(seconds, wall=seconds >= 3 * 3600)
    for seconds in (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
)
MAX_BUCKETS = 60


@dataclass(frozen=True)
class Preset:
    key: str
    span: timedelta
    step: Step


PRESETS = {
    preset.key: preset
    for preset in (
        Preset("1h", timedelta(hours=1), Step(300)),
        Preset("24h", timedelta(hours=24), Step(3600)),
        Preset("7d", timedelta(days=7), Step(6 * 3600, wall=True)),
        Preset("30d", timedelta(days=30), Step(86400, wall=True)),
    )
}
DEFAULT_PRESET = "24h"


@dataclass(frozen=True)
class Bucket:
    """``[start, end)``: the part of one step that lies in the window."""

    start: datetime
    end: datetime
    edge: datetime
    """Where the step begins (before ``start`` for a first bucket cut by the window)."""


@dataclass(frozen=True)
class Window:
    """``[since, until)`` in the viewer's zone, cut into buckets of ``step``."""

    since: datetime
    until: datetime
    step: Step
    preset: str = ""
    """The key of the preset this is ("24h"), or "" for a chosen range."""

    @property
    def seconds(self) -> float:
        return (utc(self.until) - utc(self.since)).total_seconds()

    def buckets(self) -> list[Bucket]:
        # Compared in UTC: Python compares and subtracts datetimes of one zone by their wall
        # time, which repeats an hour when the clocks go back.
        zone = self.since.tzinfo
        since, until = utc(self.since), utc(self.until)
        edge = self.step.floor(self.since)
        buckets = []
        while utc(edge) < until:
            following = self.step.after(edge)
            start, end = max(utc(edge), since), min(utc(following), until)
            if start < end:
                buckets.append(Bucket(start.astimezone(zone), end.astimezone(zone), edge))
            edge = following
        return buckets


def last(key: str, now: datetime | None = None, zone: tzinfo | None = None) -> Window:
    """The preset window ``key`` ("1h", "24h", "7d", "30d") up to now, in whole seconds (the
    next one: a result done a moment ago is in it)."""
    preset = PRESETS[key]
    zone = zone or timezone.get_current_timezone()
    now = (now or timezone.now()).astimezone(zone)
    until = now.replace(microsecond=0) + timedelta(seconds=1 if now.microsecond else 0)
    since = (utc(until) - preset.span).astimezone(zone)  # real hours, not wall-clock ones
    return Window(since, until, preset.step, key)


def between(since: datetime, until: datetime) -> Window:
    """A chosen window, with the narrowest step that keeps it to MAX_BUCKETS buckets."""
    if utc(until) <= utc(since):
        raise ValueError(_("The end of the window must come after its start."))
    if utc(until) - utc(since) > MAX_SPAN:
        raise ValueError(_("Choose a window of at most 366 days."))
    seconds = (utc(until) - utc(since)).total_seconds()
    step = next(s for s in STEPS if seconds / s.seconds <= MAX_BUCKETS - 1)
    return Window(since, until, step)


def parse_local(value: str, zone: tzinfo | None = None) -> datetime:
    """A ``datetime-local`` field's value (2026-12-02T08:30), read in the viewer's zone."""
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            # Translators: value is what was typed in the From or To field.
            _("%(value)s is not a date and time such as 2026-12-02T08:30.") % {"value": value}
        ) from None
    if not EARLIEST <= naive.replace(tzinfo=None) < LATEST:
        # Near year 1 or 9999 a zone's offset, or a bucket's step, leaves datetime's range.
        raise ValueError(
            # Translators: value is what was typed in the From or To field.
            _("%(value)s is outside the dates the overview can show (years 1900 to 8999).")
            % {"value": value}
        )
    if naive.tzinfo is not None:
        return naive
    return wall_time(naive, zone or timezone.get_current_timezone())


def zone_name(zone: tzinfo) -> str:
    return zone.key if isinstance(zone, zoneinfo.ZoneInfo) else str(zone)
