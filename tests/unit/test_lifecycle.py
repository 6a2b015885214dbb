"""The sent stamp and the start note (celery_sa.lifecycle): what a header may hold."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from celery_sa.lifecycle import SENT_HEADER, sent_time, stamp_sent, start_time


def test_publishing_stamps_the_first_send_only() -> None:
    headers: dict[str, Any] = {}
    stamp_sent(headers=headers)
    first = headers[SENT_HEADER]
    assert abs(first - datetime.now(UTC).timestamp()) < 5
    stamp_sent(headers=headers)  # a retry's message, its headers copied
    assert headers[SENT_HEADER] == first
    stamp_sent(headers=None)  # nothing to stamp: no error


def test_a_sent_time_is_read_in_celerys_zone() -> None:
    request = SimpleNamespace(**{SENT_HEADER: 1_767_225_600.25})  # 2026-01-01 00:00:00.25 UTC
    assert sent_time(request, ZoneInfo("Asia/Shanghai")) == datetime(
        2026, 1, 1, 8, 0, 0, 250_000, tzinfo=ZoneInfo("Asia/Shanghai")
    )


@pytest.mark.parametrize(
    "value",
    [None, True, "1767225600", float("nan"), float("inf"), -1.0, 1e300, 10**30, [1.0]],
)
def test_a_sent_stamp_that_is_not_a_plausible_time_is_ignored(value: Any) -> None:
    assert sent_time(SimpleNamespace(**{SENT_HEADER: value}), UTC) is None


def test_a_start_is_a_datetime_or_nothing() -> None:
    now = datetime.now(UTC)
    assert start_time(SimpleNamespace(celery_sa_started=now)) == now
    assert start_time(SimpleNamespace(celery_sa_started="yesterday")) is None
    assert start_time(SimpleNamespace()) is None
