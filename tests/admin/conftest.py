"""Fixtures of the admin's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from celery import Celery
from django.test import override_settings

from tests.support import actions


@pytest.fixture
def actions_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Celery]]:
    """Point the admin's actions at a fresh Celery app on the given broker."""
    apps: list[Celery] = []

    def use(broker: str) -> Celery:
        app = Celery("admin-actions", broker=broker, set_as_current=False)
        monkeypatch.setattr(actions, "app", app)
        apps.append(app)
        return app

    with override_settings(CELERY_SA_CELERY_APP=actions.PATH):
        yield use
    for app in apps:
        app.close()
