"""A person in a real browser (Debian's Chromium driven by Playwright) uses the admin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect

from tests.support.databases import ResultDB
from tests.support.rows import insert_rows, row

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


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
    expect(page.locator(".celery-sa-status")).to_have_text("FAILURE")
    screenshot(page, "admin-4-task-page")
