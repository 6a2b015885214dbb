"""A person in a real browser (Debian's Chromium driven by Playwright) reads the overview:
its windows, its charts, a bar followed to exactly its rows, a chosen window, the dark theme."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Locator, Page, expect

from tests.support.databases import ResultDB
from tests.support.rows import ago, insert_rows, row

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.slow,  # a real Chromium
]
Screenshot = Callable[[Page, str], None]
OVERVIEW = "/admin/celery_sa/overview/"
TASK_LIST = "/admin/celery_sa/taskresult/"
STATES_CHART = "svg#celery-sa-states-chart"
TRACEBACK = "Traceback (most recent call last):\n  File \"app/tasks.py\", line 9\nKeyError: 'id'"


def done(task_id: str, when: datetime, status: str = "SUCCESS", **values: Any) -> dict[str, Any]:
    """A finished row, sent half a second before it started two seconds before it was
    done (for the slowest and longest-waiting tables and the queue-wait chart)."""
    started = when - timedelta(seconds=2) if status != "STARTED" else None
    values.setdefault("date_sent", started - timedelta(seconds=0.5) if started else None)
    if status == "FAILURE":
        values.setdefault("traceback", TRACEBACK)
        values.setdefault("result", b'{"exc_type": "KeyError", "exc_message": ["id"]}')
    return row(task_id, status=status, date_done=when, date_started=started, **values)


@pytest.fixture
def now(embedded_result_db: ResultDB) -> datetime:
    """Rows over the last 24 hours and the 7 days before (made before Playwright starts
    its event loop in this thread: Django refuses ORM calls from such a thread), as seen
    at the returned naive UTC time:

    - last 24 h: 6 SUCCESS in 6 hours, 3 FAILURE in one hour, 1 RETRY, 2 STARTED (12);
    - 1 to 7 days ago: 4 SUCCESS, 2 FAILURE in two other 6-hour buckets (18 in 7 days);
    - 9 days ago: 1 SUCCESS, in no window but 30 days.
    """
    User.objects.create_superuser("admin", password="secret")
    moment = ago()
    failing_hour = moment.replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    insert_rows(
        *(done(f"ok-{hours}h", ago(hours=hours)) for hours in (1, 2, 3, 8, 12, 20)),
        *(
            done(f"failed-{minutes}m", failing_hour + timedelta(minutes=minutes), "FAILURE")
            for minutes in (10, 20, 30)
        ),
        done("retrying", ago(hours=2, minutes=30), "RETRY"),
        done("running-1", ago(minutes=15), "STARTED"),
        done("running-2", ago(minutes=40), "STARTED"),
        *(done(f"ok-{days}d", ago(days=days)) for days in (2, 3, 4.1, 6)),
        done("failed-3d", ago(days=3, hours=2), "FAILURE", name="app.tasks.other"),
        done("failed-5d", ago(days=5), "FAILURE", name="app.tasks.other"),
        done("ok-9d", ago(days=9)),
    )
    return moment


def log_in(page: Page, base: str, to: str) -> None:
    page.goto(f"{base}/admin/login/?next={to}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{to}")


def tooltip_rows(bar: Locator) -> int:
    """The rows a bar's tooltip counts (``Dec 2, 06:00 - 12:00 · FAILURE: 3``, en dash)."""
    title = bar.locator("title").text_content() or ""
    found = re.search(r": ([\d,]+)$", title)
    assert found, f"no count in the tooltip {title!r}"
    return int(found.group(1).replace(",", ""))


def test_a_person_opens_the_overview_widens_it_to_7_days_and_follows_a_failure_bar(
    live_server: Any, now: datetime, browser: Browser, screenshot: Screenshot
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    log_in(page, live_server.url, TASK_LIST)
    page.locator("a.celery-sa-overview-link").click()
    page.wait_for_url(f"**{OVERVIEW}")
    bars = page.locator(f"{STATES_CHART} rect.bar")
    failure_bars = page.locator(f"{STATES_CHART} rect[data-status=FAILURE]")
    expect(page.locator("#celery-sa-total")).to_have_text("12")
    expect(page.locator(".celery-sa-windows strong[aria-current]")).to_have_text("24 hours")
    assert bars.count() >= 9  # 6 SUCCESS hours, a FAILURE, a RETRY, the STARTED
    expect(failure_bars).to_have_count(1)
    expect(page.locator("#celery-sa-failing")).to_contain_text("app.tasks.job")
    expect(page.locator("#celery-sa-failing")).to_contain_text("KeyError: 'id'")
    expect(page.locator("#celery-sa-unfinished")).to_contain_text("RETRY")
    expect(page.locator("#celery-sa-unfinished")).to_contain_text("STARTED")
    expect(page.locator("#celery-sa-slowest")).to_contain_text("app.tasks.job")
    # The queue-wait chart: a p50 and a p95 point in each of the 7 hours with a finished
    # result that ran once (6 SUCCESS hours, the FAILURE hour; not the RETRY).
    waits = page.locator("svg#celery-sa-queue-wait-chart circle.point")
    expect(waits).to_have_count(14)
    expect(waits.first.locator("title")).to_contain_text("p50: 0.500 s")
    page.locator("details:has(#celery-sa-buckets) summary").click()
    expect(page.locator("#celery-sa-buckets")).to_be_visible()
    screenshot(page, "overview-24h")

    page.locator(".celery-sa-windows").get_by_role("link", name="7 days").click()
    page.wait_for_url("**window=7d**")
    expect(page.locator("#celery-sa-total")).to_have_text("18")
    expect(page.locator(".celery-sa-windows strong[aria-current]")).to_have_text("7 days")
    expect(failure_bars).to_have_count(3)  # the three 5 hours ago, 3 and 5 days ago
    expect(page.locator("#celery-sa-failing")).to_contain_text("app.tasks.other")
    screenshot(page, "overview-7d")

    counts = [tooltip_rows(bar) for bar in failure_bars.all()]
    assert sorted(counts) == [1, 1, 3]
    busiest = failure_bars.nth(counts.index(3))
    busiest.click()
    page.wait_for_url(f"**{TASK_LIST}?**")
    query = parse_qs(urlsplit(page.url).query)
    assert query["status"] == ["FAILURE"]
    assert {"date_done__gte", "date_done__lt"} <= query.keys()
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    expect(page.locator("#result_list .celery-sa-status")).to_have_text(["FAILURE"] * 3)
    expect(page.locator("#result_list")).to_contain_text("failed-10m")
    screenshot(page, "overview-bar-followed")


def test_a_person_chooses_a_window_with_from_and_to(
    live_server: Any, now: datetime, browser: Browser, screenshot: Screenshot
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    log_in(page, live_server.url, OVERVIEW)
    since = (now - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M")
    until = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    page.fill("#celery-sa-from", since)
    page.fill("#celery-sa-to", until)
    page.locator(".celery-sa-windows input[type=submit]").click()
    page.wait_for_url("**from=**")
    query = parse_qs(urlsplit(page.url).query)
    assert (query["from"], query["to"]) == ([since], [until])
    expect(page.locator(".messagelist .error")).to_have_count(0)
    expect(page.locator(".celery-sa-windows strong[aria-current]")).to_have_count(0)
    expect(page.locator("#celery-sa-from")).to_have_value(since)
    expect(page.locator("#celery-sa-to")).to_have_value(until)
    # 2, 3 and 4.1 days ago: SUCCESS, SUCCESS, out; 3 days 2 hours ago: FAILURE.
    expect(page.locator("#celery-sa-total")).to_have_text("3")
    expect(page.locator(f"{STATES_CHART} rect.bar")).to_have_count(3)
    screenshot(page, "overview-custom")

    page.fill("#celery-sa-from", until)
    page.fill("#celery-sa-to", since)
    page.locator(".celery-sa-windows input[type=submit]").click()
    expect(page.locator(".messagelist .error")).to_have_text(
        "The end of the window must come after its start."
    )
    expect(page.locator("#celery-sa-total")).to_have_text("12")  # the default 24 hours


def test_the_charts_and_the_legend_take_the_dark_themes_colours(
    live_server: Any, now: datetime, browser: Browser, screenshot: Screenshot
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    log_in(page, live_server.url, OVERVIEW)
    axis = page.locator(f"{STATES_CHART} text.axis").first

    def fill() -> str:
        return str(axis.evaluate("text => getComputedStyle(text).fill"))

    failure_bar = page.locator(f"{STATES_CHART} rect[data-status=FAILURE]")
    failure_swatch = page.locator(".celery-sa-swatch[data-status=FAILURE]")
    light = fill()
    for bar in page.locator(f"{STATES_CHART} rect.bar").all():  # the stylesheet's colours
        expect(bar).to_have_css("fill", rgb(bar.get_attribute("fill") or ""))
    expect(failure_swatch).to_have_css("background-color", rgb("#b3261e"))
    page.emulate_media(color_scheme="dark")
    dark = fill()
    assert light != dark
    expect(page.locator("body")).not_to_have_css("background-color", "rgb(255, 255, 255)")
    expect(failure_bar).to_have_css("fill", rgb("#ff8a80"))
    expect(failure_swatch).to_have_css("background-color", rgb("#ff8a80"))
    screenshot(page, "overview-dark")


def rgb(colour: str) -> str:
    """``#b3261e`` as the browser computes it, ``rgb(179, 38, 30)``."""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def test_each_grid_line_of_the_states_chart_is_labelled_with_its_value(
    live_server: Any, now: datetime, browser: Browser
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    log_in(page, live_server.url, OVERVIEW)
    ticks = page.locator(f"{STATES_CHART} text.axis[text-anchor=end]").all_text_contents()
    values = [float(tick.replace(",", "")) for tick in ticks]  # bottom up
    assert values[-1] >= 3  # the busiest hour of the last 24 hours has 3 rows
    assert values == pytest.approx([i * values[1] for i in range(len(values))]), ticks
