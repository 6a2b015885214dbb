"""A person in a real browser (Debian's Chromium driven by Playwright) follows a stuck chord
from the overview to its page and its header group, and gets as far as failing it, under
a strict Content Security Policy."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect

from celery_sa.conf import configured_tables
from tests.support.browser import csp_violations
from tests.support.databases import ResultDB
from tests.support.rows import insert_into, insert_rows, row

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.slow,  # a real Chromium
]
CHORD_ID = "1c0d2e3f-4a5b-4c6d-8e7f-000000000001"
RETURNED = "1c0d2e3f-4a5b-4c6d-8e7f-000000000002"
FAILED = "1c0d2e3f-4a5b-4c6d-8e7f-000000000003"
MISSING = "1c0d2e3f-4a5b-4c6d-8e7f-000000000004"
CALLBACK = "1c0d2e3f-4a5b-4c6d-8e7f-000000000005"


@pytest.fixture
def stuck_chord(embedded_result_db: ResultDB) -> None:
    """A chord of 3 started 2 hours ago: one header task returned, one failed before it was
    counted, one never stored; its header saved as a group, with its member rows."""
    User.objects.create_superuser("admin", password="secret")
    started = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=2)
    insert_rows(
        row(RETURNED, name="app.tasks.part", result=b"1", date_started=started),
        row(FAILED, status="FAILURE", name="app.tasks.part", result=b"null"),
    )
    tables = configured_tables()
    header = ", ".join(f'[["{i}", null], null]' for i in (RETURNED, FAILED, MISSING))
    insert_into(
        tables.group,
        [{"taskset_id": CHORD_ID, "result": f'[["{CHORD_ID}", null], [{header}]]'.encode()}],
    )
    insert_into(
        tables.member,
        [
            {"group_id": CHORD_ID, "task_id": task_id, "group_index": n, "date_done": started}
            for n, task_id in enumerate((RETURNED, FAILED, MISSING))
        ],
    )
    callback = {"task": "app.tasks.report", "options": {"task_id": CALLBACK}}
    insert_into(
        tables.chord,
        [
            {
                "group_id": CHORD_ID,
                "chord_size": 3,
                "date_created": started,
                "callback": json.dumps(callback).encode(),
            }
        ],
    )
    insert_into(
        tables.part,
        [{"group_id": CHORD_ID, "task_id": RETURNED, "group_index": 0, "date_done": started}],
    )


def test_a_person_follows_a_stuck_chord_to_its_missing_task_and_its_group(
    live_server: Any, stuck_chord: None, browser: Browser, screenshot: Callable[[Page, str], None]
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    violations = csp_violations(page)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/celery_sa/overview/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/celery_sa/overview/")
    chords = page.locator("#celery-sa-chords")
    expect(chords).to_contain_text("Stuck (waiting over 1 h 0 min)")
    expect(chords.locator("td.celery-sa-stuck")).to_have_text("1")
    expect(chords.locator("td.celery-sa-stuck")).to_have_css("color", "rgb(179, 38, 30)")
    screenshot(page, "chords-1-overview")

    chords.get_by_role("link", name="Stuck (waiting over 1 h 0 min)").click()
    page.wait_for_url("**state=stuck**")
    listing = page.locator("#result_list")
    expect(listing).to_contain_text("app.tasks.report")
    expect(listing).to_contain_text("1 of 3")
    expect(listing.locator(".celery-sa-chord-state")).to_have_text("stuck")
    expect(listing.locator("progress.celery-sa-progress")).to_have_attribute("value", "1")
    screenshot(page, "chords-2-stuck-list")

    listing.get_by_role("link", name=CHORD_ID).click()
    missing = page.locator(".field-missing_view")
    expect(missing).to_contain_text(MISSING)
    expect(missing).to_contain_text("(no row: not stored yet)")
    expect(missing.locator('.celery-sa-status[data-status="FAILURE"]')).to_be_visible()
    expect(missing).not_to_contain_text(RETURNED)
    expect(page.locator(".field-callback_view")).to_contain_text(CALLBACK)
    screenshot(page, "chords-3-chord-page")

    page.locator(".field-group_link").get_by_role("link", name=CHORD_ID).click()
    expect(page.locator(".field-chord_view")).to_contain_text(
        "Header of a chord waiting to call app.tasks.report: 1 of 3 header tasks returned."
    )
    expect(page.locator(".field-chord_view")).to_contain_text(CALLBACK)  # the callback's id
    members = page.locator(".field-member_links")
    expect(members.get_by_role("link", name=RETURNED)).to_be_visible()
    expect(members).to_contain_text(MISSING)
    screenshot(page, "chords-4-group-page")

    page.goto(f"{live_server.url}/admin/celery_sa/groupresult/?progress=unfinished")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list")).to_contain_text(CHORD_ID)

    page.goto(f"{live_server.url}/admin/celery_sa/chord/")
    page.locator("input.action-select").first.check()
    page.select_option("select[name=action]", "fail_chords")
    page.click("button[name=index]")
    confirmation = page.locator("table.celery-sa-rerun")
    expect(confirmation).to_contain_text(f"{MISSING} (no row)")
    expect(confirmation).to_contain_text(f"{FAILED} (FAILURE)")
    expect(page.get_by_role("button", name="Yes, fail them")).to_be_visible()
    screenshot(page, "chords-5-fail-confirmation")
    assert violations == []
