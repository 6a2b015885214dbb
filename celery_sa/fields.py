"""Model fields for columns Celery writes in its own way."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from celery_sa.db import adapters

# Stored times this close to the calendar's ends cannot be moved to another zone (year 0 or
# 10000 would be an OverflowError): they are kept in their own zone.
EDGE = timedelta(days=2)


class EdgeOfTime(datetime):
    """A stored time within :data:`EDGE` of the calendar's ends (a hand-made or corrupt
    ``0001-01-01``): templates show it in its stored zone instead of failing to convert it
    into the viewer's, as Django's own ``localtime`` filter marks its results."""

    convert_to_local_time = False


class NaiveZonedDateTimeField(models.DateTimeField):  # type: ignore[type-arg]
    """A naive ``DATETIME``/``TIMESTAMP`` column holding wall-clock time in a known zone.

    Celery stores ``date_done`` without a time zone. MySQL and SQLite drivers write the wall
    time of the datetime they are given: Celery's zone for the task table, UTC for the group
    table (``zone``). PostgreSQL converts the aware value into the writing session's
    ``TimeZone``, the database's default, for both. Django would read every one of them as
    UTC (or, on PostgreSQL, not at all), so this field converts both ways itself.
    """

    def __init__(self, *args: Any, zone: Callable[[], str] | str = "UTC", **kwargs: Any):
        self.zone = zone
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        # Migrations see a plain DateTimeField: the table is unmanaged and the zone is a
        # runtime setting, not schema.
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.DateTimeField", args, kwargs

    def get_internal_type(self) -> str:
        # Not "DateTimeField": that would make the MySQL and SQLite backends apply their
        # own naive-means-UTC conversion before from_db_value sees the value.
        return "NaiveZonedDateTimeField"

    def db_type(self, connection: BaseDatabaseWrapper) -> str | None:
        return connection.data_types["DateTimeField"] % self.db_type_parameters(connection)

    def tzinfo(self, connection: BaseDatabaseWrapper) -> zoneinfo.ZoneInfo:
        """The zone the stored wall-clock times are in, on ``connection``'s database."""
        zone = self.zone() if callable(self.zone) else self.zone
        return adapters.get_operations(connection).stored_zone(connection, zone)

    def from_db_value(
        self, value: Any, expression: Any, connection: BaseDatabaseWrapper
    ) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = parse_datetime(value)
            if value is None:
                return None
        if timezone.is_naive(value):
            value = value.replace(tzinfo=self.tzinfo(connection))
        if not datetime.min + EDGE < value.replace(tzinfo=None) < datetime.max - EDGE:
            return EdgeOfTime.combine(value.date(), value.timetz())
        return value  # type: ignore[no-any-return]

    def get_db_prep_value(
        self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False
    ) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        if not isinstance(value, datetime):
            return connection.ops.adapt_datetimefield_value(value)
        if timezone.is_aware(value):
            try:
                value = value.astimezone(self.tzinfo(connection)).replace(tzinfo=None)
            except OverflowError:  # a bound near the calendar's ends (a crafted date filter)
                value = datetime.min if value.year < 5000 else datetime.max
        return adapters.get_operations(connection).datetime_param(value, connection)


class NaiveUTCDateTimeField(NaiveZonedDateTimeField):
    """A naive column celery_sa's backend writes in UTC itself (the chord tables): UTC on
    every database, PostgreSQL included (its driver is given naive values, never converted
    into the session's zone)."""

    def tzinfo(self, connection: BaseDatabaseWrapper) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo("UTC")
