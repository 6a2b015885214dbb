"""A person in a real browser (Debian's Chromium driven by Playwright) uses the admin."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from celery_sa.models import GroupResult, TaskAttempt
from tests.support.browser import POLICY, csp_violations
from tests.support.databases import ResultDB
from tests.support.rows import insert_rows, row

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.slow,  # a real Chromium
]
MEMBER_ID = "5a0c2f1e-1b2c-4d3e-8f40-000000000001"
GROUP_ID = "9e8d7c6b-5a49-4382-a716-000000000002"


@pytest.fixture
def rows(embedded_result_db: ResultDB) -> None:
    """The data, made before Playwright starts its event loop in this thread (Django
    refuses ORM calls from a thread with a running loop)."""
    User.objects.create_superuser("admin", password="secret")
    insert_rows(
        row("task-ok", result=b'{"answer": 42}', name="app.tasks.alpha"),
        row(
            "task-failed",
            status="FAILURE",
            name="app.tasks.beta",
            result=b'{"exc_type": "ZeroDivisionError", "exc_message": ["division by zero"]}',
            traceback='Traceback (most recent call last):\n  File "app/tasks.py", line 3\n'
            "ZeroDivisionError: division by zero",
        ),
    )


def test_a_person_logs_in_filters_searches_and_opens_a_task(
    live_server: Any, rows: None, browser: Browser, screenshot: Callable[[Page, str], None]
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{live_server.url}/admin/login/?next=/admin/celery_sa/taskresult/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/celery_sa/taskresult/")
    expect(page.locator("#result_list")).to_contain_text("task-ok")
    expect(page.locator("#result_list")).to_contain_text("task-failed")
    screenshot(page, "admin-1-changelist")

    page.locator("#changelist-filter").get_by_role("link", name="FAILURE").click()
    page.wait_for_url("**status=FAILURE**")
    expect(page.locator("#result_list")).to_contain_text("task-failed")
    expect(page.locator("#result_list")).not_to_contain_text("task-ok")
    screenshot(page, "admin-2-filtered")

    page.goto(f"{live_server.url}/admin/celery_sa/taskresult/")
    page.fill("#searchbar", "task-ok")
    page.press("#searchbar", "Enter")
    page.wait_for_url("**q=task-ok**")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    screenshot(page, "admin-3-searched")

    page.goto(f"{live_server.url}/admin/celery_sa/taskresult/?status=FAILURE")
    page.locator("#result_list").get_by_role("link", name="task-failed").click()
    expect(page.locator("pre.celery-sa-traceback")).to_contain_text(
        "ZeroDivisionError: division by zero"
    )
    expect(page.locator(".field-status_badge .celery-sa-status")).to_have_text("FAILURE")
    screenshot(page, "admin-4-task-page")


@pytest.fixture
def group(rows: None) -> int:
    """A group of one task, both stored; returns the group's primary key. With a task that
    kept its start time and one still running, so the overview shows every section."""
    insert_rows(
        row(MEMBER_ID, name="app.tasks.gamma", result=b'"done"'),
        row("task-timed", name="app.tasks.delta", date_started=datetime(2026, 1, 2, 3, 4, 1)),
        row("task-running", status="STARTED", name="app.tasks.delta", date_done=None),
    )
    # The failed task's first execution ended in a retry: its page draws a timeline.
    TaskAttempt.objects.create(
        task_id="task-failed",
        attempt=0,
        status="RETRY",
        date_started=datetime(2026, 1, 2, 3, 0, 0, tzinfo=UTC),
        date_done=datetime(2026, 1, 2, 3, 0, 1, tzinfo=UTC),
        exception="ConnectionError",
        message="refused",
    )
    members = f'["{GROUP_ID}", [["{MEMBER_ID}", null], null]]'.encode()
    saved = GroupResult.objects.create(
        taskset_id=GROUP_ID, result=members, date_done=timezone.now()
    )
    return saved.pk


def test_the_admins_pages_need_nothing_a_strict_content_security_policy_blocks(
    live_server: Any, group: int, browser: Browser, screenshot: Callable[[Page, str], None]
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    violations = csp_violations(page)

    def visit(path: str) -> None:
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.ok, path
        assert response.header_value("content-security-policy") == POLICY, path

    visit("/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    pages = {
        "csp-index": "/admin/",
        "csp-task-list": "/admin/celery_sa/taskresult/?status=FAILURE",
        "csp-task-page": "/admin/celery_sa/taskresult/?q=task-failed",
        "csp-group-list": "/admin/celery_sa/groupresult/",
        "csp-group-page": f"/admin/celery_sa/groupresult/{group}/change/",
        "csp-overview": "/admin/celery_sa/overview/?from=2026-01-02T00:00&to=2026-01-03T00:00",
    }
    for name, path in pages.items():
        visit(path)
        if name == "csp-task-page":
            page.locator("#result_list").get_by_role("link", name="task-failed").click()
            expect(page.locator("pre.celery-sa-traceback")).to_contain_text("ZeroDivisionError")
            timeline = page.locator(".celery-sa-timeline")
            expect(timeline).to_contain_text("execution 1")
            expect(timeline).to_contain_text("ConnectionError: refused")
            expect(page.locator(".celery-sa-step-exception")).to_have_css("white-space", "pre-wrap")
        if name == "csp-overview":
            expect(page.locator("#celery-sa-slowest")).to_contain_text("app.tasks.delta")
            expect(page.locator("#celery-sa-unfinished")).to_contain_text("STARTED")
        screenshot(page, name)
        assert violations == [], f"{name}: {violations}"

    # What the stylesheets give instead of inline styles really applies.
    expect(page.locator(".celery-sa-swatch").first).to_have_css("display", "inline-block")
    visit(pages["csp-task-list"])
    expect(page.locator(".celery-sa-status")).to_have_css("color", "rgb(179, 38, 30)")
    expect(page.locator(".celery-sa-status")).to_have_css("font-weight", "700")
    page.emulate_media(color_scheme="dark")  # the list keeps the light tone
    expect(page.locator(".celery-sa-status")).to_have_css("color", "rgb(179, 38, 30)")
    visit(pages["csp-group-page"])
    expect(page.get_by_role("link", name=MEMBER_ID)).to_be_visible()
    expect(page.locator("pre.celery-sa-value")).to_have_css("white-space", "pre-wrap")
    assert violations == []

    # The re-run confirmation page: chosen as a person would, from the list's actions.
    visit(pages["csp-task-list"])
    page.locator("input.action-select").first.check()
    page.select_option("select[name=action]", "rerun")
    page.click("button[name=index]")
    expect(page.locator("table.celery-sa-rerun")).to_contain_text(
        "app.tasks.beta is not a task the Celery app has registered"
    )
    screenshot(page, "csp-rerun-confirmation")
    assert violations == [], f"rerun confirmation: {violations}"
    page.get_by_role("link", name="No, take me back").click()
    expect(page.locator("#result_list")).to_contain_text("task-failed")
