"""The overview's windows: bucket edges on the viewer's clock, real hours across
daylight-saving changes, the step a chosen range gets, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from celery_sa.reports.window import Step, Window, between, last, parse_local, zone_name

BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
    *,
    zone: ZoneInfo = BERLIN,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone)


def lengths(window: Window) -> list[float]:
    """Each bucket's length in real seconds."""
    return [
        (b.end.astimezone(UTC) - b.start.astimezone(UTC)).total_seconds() for b in window.buckets()
    ]


def test_a_step_floors_to_its_edge_on_the_viewers_clock() -> None:
    moment = at(2026, 12, 2, 13, 59, 31, 500)  # a Wednesday
    assert Step(60).floor(moment) == at(2026, 12, 2, 13, 59)
    assert Step(300).floor(moment) == at(2026, 12, 2, 13, 55)
    assert Step(3600).floor(moment) == at(2026, 12, 2, 13)
    assert Step(6 * 3600, wall=True).floor(moment) == at(2026, 12, 2, 12)
    assert Step(86400, wall=True).floor(moment) == at(2026, 12, 2)
    assert Step(7 * 86400, wall=True).floor(moment) == at(2026, 11, 30)  # the Monday


def test_the_last_24_hours_end_at_the_next_whole_second_and_cut_the_first_hour() -> None:
    window = last("24h", now=datetime(2026, 12, 2, 8, 30, 0, 250_000, tzinfo=UTC), zone=SHANGHAI)
    assert window.until == at(2026, 12, 2, 16, 30, 1, zone=SHANGHAI)
    assert window.since == at(2026, 12, 1, 16, 30, 1, zone=SHANGHAI)
    assert (window.preset, window.seconds) == ("24h", 86400.0)
    buckets = window.buckets()
    assert len(buckets) == 25
    first, last_bucket = buckets[0], buckets[-1]
    assert (first.edge, first.start, first.end) == (
        at(2026, 12, 1, 16, zone=SHANGHAI),
        at(2026, 12, 1, 16, 30, 1, zone=SHANGHAI),
        at(2026, 12, 1, 17, zone=SHANGHAI),
    )
    assert (last_bucket.start, last_bucket.end) == (
        at(2026, 12, 2, 16, zone=SHANGHAI),
        at(2026, 12, 2, 16, 30, 1, zone=SHANGHAI),
    )
    assert sum(lengths(window)) == 86400


def test_a_window_that_ends_on_a_whole_second_ends_there() -> None:
    window = last("1h", now=datetime(2026, 12, 2, 8, 30, tzinfo=UTC), zone=UTC)
    assert (window.since, window.until) == (
        datetime(2026, 12, 2, 7, 30, tzinfo=UTC),
        datetime(2026, 12, 2, 8, 30, tzinfo=UTC),
    )
    assert lengths(window) == [300.0] * 12


def test_days_are_23_and_25_hours_long_when_the_clocks_change() -> None:
    day = Step(86400, wall=True)
    autumn = Window(at(2026, 10, 24), at(2026, 10, 27), day)
    assert lengths(autumn) == [86400, 90000, 86400]
    assert [b.start for b in autumn.buckets()] == [
        at(2026, 10, 24),
        at(2026, 10, 25),
        at(2026, 10, 26),
    ]
    spring = Window(at(2026, 3, 28), at(2026, 3, 31), day)
    assert lengths(spring) == [86400, 82800, 86400]


def test_hours_stay_real_hours_through_the_hour_the_clocks_repeat() -> None:
    # 02:00-03:00 happens twice in Berlin on 2026-10-25 (CEST, then CET).
    since = datetime(2026, 10, 24, 23, tzinfo=UTC).astimezone(BERLIN)
    until = datetime(2026, 10, 25, 3, tzinfo=UTC).astimezone(BERLIN)
    window = Window(since, until, Step(3600))
    assert window.seconds == 4 * 3600
    assert lengths(window) == [3600.0] * 4
    assert [b.start.astimezone(UTC).hour for b in window.buckets()] == [23, 0, 1, 2]
    assert [b.start.strftime("%H:%M %Z") for b in window.buckets()] == [
        "01:00 CEST",
        "02:00 CEST",
        "02:00 CET",
        "03:00 CET",
    ]


def test_a_chosen_range_gets_the_narrowest_step_within_60_buckets() -> None:
    start = at(2026, 12, 1)
    assert between(start, start + timedelta(minutes=59)).step == Step(60)
    assert between(start, start + timedelta(minutes=60)).step == Step(300)
    assert between(start, start + timedelta(hours=2)).step == Step(300)
    assert between(start, start + timedelta(days=3)).step == Step(3 * 3600, wall=True)
    assert between(start, start + timedelta(days=366)).step == Step(7 * 86400, wall=True)
    assert between(start, start + timedelta(hours=2)).preset == ""


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        (at(2026, 12, 2), at(2026, 12, 1), "The end of the window must come after its start."),
        (at(2026, 12, 2), at(2026, 12, 2), "The end of the window must come after its start."),
        (at(2025, 12, 1), at(2026, 12, 3), "Choose a window of at most 366 days."),
    ],
)
def test_a_backwards_empty_or_too_long_range_is_refused(
    since: datetime, until: datetime, message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        between(since, until)
    assert str(raised.value) == message


def test_a_typed_time_is_read_on_the_viewers_clock() -> None:
    assert parse_local("2026-12-02T08:30", SHANGHAI) == at(2026, 12, 2, 8, 30, zone=SHANGHAI)
    assert parse_local(" 2026-12-02T08:30+01:00 ", SHANGHAI).utcoffset() == timedelta(hours=1)
    # 02:30 does not exist in Berlin that night: the clock jumped from 02:00 to 03:00.
    skipped = parse_local("2026-03-29T02:30", BERLIN)
    assert skipped.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert skipped.strftime("%H:%M %Z") == "03:30 CEST"


def test_a_time_that_cannot_be_read_says_what_was_typed() -> None:
    with pytest.raises(ValueError) as raised:
        parse_local("yesterday", BERLIN)
    assert str(raised.value) == "yesterday is not a date and time such as 2026-12-02T08:30."


def test_zones_are_named_by_their_key() -> None:
    assert zone_name(SHANGHAI) == "Asia/Shanghai"
    assert zone_name(UTC) == "UTC"
