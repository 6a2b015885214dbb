"""A real worker's chords (celery_sa's backend, Redis) in the waiting chords list, the
overview, the metrics and celery_sa_stats, and failed from the admin: on SQLite, MariaDB
and PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, chord
from celery._state import get_current_app
from celery.result import AsyncResult
from django.contrib.admin import helpers
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from celery_sa.models import Chord, ChordPart
from tests.support.workers import Worker

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

TASKS = "tests.support.backend_tasks"
CHANGELIST = reverse("admin:celery_sa_chord_changelist")
# Long enough that a chord that completes normally is never old enough to be stuck.
STUCK_AFTER = 3.0


def until(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {condition}")
        time.sleep(0.1)
    return found


def runs_of(tmp_path: Path, name: str) -> list[str]:
    """The ids of the runs of task ``name`` the worker noted."""
    path = tmp_path / "runs.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split()[0] for line in lines if line.split()[1] == f"{TASKS}.{name}"]


@pytest.fixture
def current(worker_and_client: tuple[Worker, Celery]) -> Iterator[Celery]:
    """The client app as Celery's current app (the admin's actions use it)."""
    _, app = worker_and_client
    previous = get_current_app()
    app.set_current()
    try:
        yield app
    finally:
        previous.set_current()


def held_chord(app: Celery, release: Path, errback_id: str) -> AsyncResult:  # type: ignore[type-arg]
    """A chord of three: two return at once, the third when ``release`` exists; its
    callback's error callback has the id ``errback_id``."""
    errback = app.signature(f"{TASKS}.errback_noted").set(task_id=errback_id)
    callback = app.signature(f"{TASKS}.collect").on_error(errback)
    header = [
        app.signature(f"{TASKS}.add", (1, 1)),
        app.signature(f"{TASKS}.add", (2, 2)),
        app.signature(f"{TASKS}.held", (3, str(release))),
    ]
    return chord(header)(callback)


def shown_as_stuck(admin_client: Client, group_id: str, held_id: str, returned_id: str) -> None:
    """The stuck chord ``group_id`` in its list, on its page (``held_id`` missing, not
    ``returned_id``), in the overview, the metrics and celery_sa_stats."""
    listing = admin_client.get(CHANGELIST + "?state=stuck")
    assert listing.context["cl"].result_count == 1
    assert 'data-state="stuck"' in listing.text
    page = admin_client.get(reverse("admin:celery_sa_chord_change", args=[group_id])).text
    assert held_id in page  # the header task still missing
    assert returned_id not in page  # returned: not listed
    overview = admin_client.get(reverse("admin:celery_sa_overview_changelist"))
    assert overview.context["chords"].waiting == 1
    assert overview.context["chords"].stuck == 1
    assert 'id="celery-sa-chords"' in overview.text
    metrics = admin_client.get("/metrics/celery/").text
    assert "celery_sa_chords_waiting 1.0" in metrics
    assert "celery_sa_chords_stuck 1.0" in metrics
    oldest = next(
        line
        for line in metrics.splitlines()
        if line.startswith("celery_sa_chords_waiting_oldest_age_seconds ")
    )
    assert float(oldest.split()[1]) >= STUCK_AFTER
    out = StringIO()
    call_command("celery_sa_stats", "--json", stdout=out)
    chords = json.loads(out.getvalue())["chords"]
    assert (chords["waiting"], chords["stuck"]) == (1, 1)


def test_a_held_chord_waits_becomes_stuck_and_is_failed_once(
    current: Celery, admin_client: Client, tmp_path: Path
) -> None:
    app = current
    # A chord that completes normally never shows as waiting once it has.
    normal = chord([app.signature(f"{TASKS}.add", (i, i)) for i in range(3)])(
        app.signature(f"{TASKS}.collect")
    )
    assert normal.get(timeout=30) == [0, 2, 4]
    until(lambda: not Chord.objects.filter(group_id=normal.parent.id).exists())

    release = tmp_path / "release"
    errback_id = str(uuid.uuid4())
    callback = held_chord(app, release, errback_id)
    group_id = callback.parent.id
    held_id = callback.parent.results[2].id
    until(lambda: ChordPart.objects.filter(group_id=group_id).count() == 2)

    with override_settings(CELERY_SA_CHORD_STUCK_AFTER=STUCK_AFTER):
        [waiting] = admin_client.get(CHANGELIST).context["cl"].result_list
        assert (waiting.group_id, waiting.parts_done, waiting.chord_size) == (group_id, 2, 3)
        assert admin_client.get(CHANGELIST + "?state=waiting").context["cl"].result_count == 1
        assert admin_client.get(CHANGELIST + "?state=stuck").context["cl"].result_count == 0
        assert f"{TASKS}.collect" in admin_client.get(CHANGELIST).text

        time.sleep(STUCK_AFTER)
        shown_as_stuck(admin_client, group_id, held_id, callback.parent.results[0].id)

    action = {"action": "fail_chords", helpers.ACTION_CHECKBOX_NAME: [group_id]}
    confirmation = admin_client.post(CHANGELIST, action)
    assert confirmation.status_code == 200
    assert held_id in confirmation.text
    assert Chord.objects.filter(group_id=group_id).exists()  # nothing done before "yes"

    done = admin_client.post(CHANGELIST, {**action, "post": "yes"}, follow=True)
    assert f"Failed 1 chord: {group_id}" in done.text
    assert not Chord.objects.filter(group_id=group_id).exists()
    assert not ChordPart.objects.filter(group_id=group_id).exists()
    # The callback's error callback ran (on the worker), given the callback's id, and the
    # callback is stored as failed with a ChordError naming the missing task.
    assert AsyncResult(errback_id, app=app).get(timeout=30) == callback.id
    assert callback.state == "FAILURE"
    assert "ChordError" in repr(callback.result)
    assert held_id in str(callback.result)

    # The held task returns now: nothing is sent, and failing again does nothing.
    release.touch()
    assert AsyncResult(held_id, app=app).get(timeout=30) == 3
    time.sleep(1)
    assert callback.id not in runs_of(tmp_path, "collect")
    assert runs_of(tmp_path, "errback_noted") == [errback_id]
    assert AsyncResult(callback.id, app=app).state == "FAILURE"
    assert not ChordPart.objects.filter(group_id=group_id).exists()


def test_a_chord_that_fires_after_the_confirmation_page_is_not_failed(
    current: Celery, admin_client: Client, tmp_path: Path
) -> None:
    app = current
    release = tmp_path / "release"
    errback_id = str(uuid.uuid4())
    callback = held_chord(app, release, errback_id)
    group_id = callback.parent.id
    until(lambda: ChordPart.objects.filter(group_id=group_id).count() == 2)
    action = {"action": "fail_chords", helpers.ACTION_CHECKBOX_NAME: [group_id]}
    assert admin_client.post(CHANGELIST, action).status_code == 200

    release.touch()  # the header completes: its last task sends the callback
    assert callback.get(timeout=30) == [2, 4, 3]
    # Confirmed too late: the chord's row may still be there (sent a moment ago) or gone.
    done = admin_client.post(CHANGELIST, {**action, "post": "yes"}, follow=True)
    assert "Failed 1 chord" not in done.text
    time.sleep(1)
    assert runs_of(tmp_path, "collect") == [callback.id]
    assert errback_id not in runs_of(tmp_path, "errback_noted")
    assert AsyncResult(callback.id, app=app).state == "SUCCESS"
