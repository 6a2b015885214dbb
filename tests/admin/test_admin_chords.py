"""The waiting chords' pages over rows written here: who may fail a chord, what cannot be
read or known, and the reports without celery_sa's chord table."""

from __future__ import annotations

import json
import pickle
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.admin import helpers
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.urls import reverse
from sqlalchemy import create_engine, text

from celery_sa.conf import configured_tables
from celery_sa.db import result_database
from celery_sa.models import Chord
from tests.support.databases import ResultDB
from tests.support.rows import insert_into

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

CHANGELIST = reverse("admin:celery_sa_chord_changelist")


def waiting_chord(callback: bytes | None = None, age: timedelta = timedelta(hours=2)) -> str:
    """A chord of 3 started ``age`` ago, 1 part returned, calling tests' ``collect``."""
    group_id = str(uuid.uuid4())
    if callback is None:
        signature = {"task": "tests.collect", "options": {"task_id": str(uuid.uuid4())}}
        callback = json.dumps(signature).encode()
    started = datetime.now(UTC).replace(tzinfo=None) - age
    tables = configured_tables()
    insert_into(
        tables.chord,
        [{"group_id": group_id, "chord_size": 3, "date_created": started, "callback": callback}],
    )
    part = {"group_id": group_id, "task_id": str(uuid.uuid4()), "date_done": started}
    insert_into(tables.part, [part])
    return group_id


def staff(*permissions: str) -> Client:
    user = User.objects.create_user(f"u{uuid.uuid4().hex[:8]}", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def fail(client: Client, group_id: str) -> Any:
    action = {"action": "fail_chords", helpers.ACTION_CHECKBOX_NAME: [group_id], "post": "yes"}
    return client.post(CHANGELIST, action, follow=True)


def test_failing_a_chord_takes_its_own_permission(embedded_result_db: ResultDB) -> None:
    group_id = waiting_chord()
    viewer = staff("view_chord")
    listing = viewer.get(CHANGELIST)
    assert listing.status_code == 200
    assert [chord.group_id for chord in listing.context["cl"].result_list] == [group_id]
    assert "fail_chords" not in listing.text
    # What the list cannot show, said on it.
    assert "Chords run by Celery's own backend (celery.chord_unlock)" in listing.text
    fail(viewer, group_id)
    assert Chord.objects.get(group_id=group_id).date_fired is None  # untouched
    listing = staff("view_chord", "fail_chord").get(CHANGELIST)
    assert 'value="fail_chords"' in listing.text
    # Nobody deletes a chord's counter from the admin: that would silence its errbacks.
    assert not listing.context["cl"].model_admin.has_delete_permission(listing.wsgi_request)
    assert staff().get(CHANGELIST).status_code == 403


def test_a_chord_whose_callback_is_a_pickle_is_shown_but_never_failed(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    hostile = pickle.dumps(OSError("boom"))  # a class: never loaded by the admin
    group_id = waiting_chord(callback=hostile)
    listing = admin_client.get(CHANGELIST)
    assert listing.status_code == 200
    assert "not executed" in listing.text
    response = fail(admin_client, group_id)
    assert "cannot be read safely" in response.text
    assert Chord.objects.get(group_id=group_id).date_fired is None


def test_a_chord_without_its_saved_header_says_what_is_not_known(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    group_id = waiting_chord()
    page = admin_client.get(reverse("admin:celery_sa_chord_change", args=[group_id]))
    assert page.status_code == 200
    assert "Not known: the header&#x27;s task ids were not recorded" in page.text
    assert "1 of 3" in page.text
    assert 'data-state="stuck"' in page.text  # 2 hours, over the default hour
    with override_settings(CELERY_SA_CHORD_STUCK_AFTER=timedelta(hours=3)):
        page = admin_client.get(reverse("admin:celery_sa_chord_change", args=[group_id]))
        assert 'data-state="waiting"' in page.text


def test_without_the_chord_table_the_reports_say_so(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    engine = create_engine(result_database().url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {configured_tables().chord.name}"))
    engine.dispose()
    overview = admin_client.get(reverse("admin:celery_sa_overview_changelist"))
    assert overview.status_code == 200
    assert overview.context["chords"] is None
    assert "this database has none" in overview.text
    metrics = admin_client.get("/metrics/celery/").text
    assert "celery_sa_tasks_unfinished" in metrics
    assert "celery_sa_chords_waiting" not in metrics
    # The list points at the command that makes the table instead of failing.
    response = admin_client.get(CHANGELIST, follow=True)
    assert response.status_code == 200
    assert "celery_sa_tables" in response.text
