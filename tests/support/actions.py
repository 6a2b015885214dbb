"""The Celery app the admin's actions send through in tests (CELERY_SA_CELERY_APP names it)."""

from __future__ import annotations

from celery import Celery

app: Celery | None = None
PATH = "tests.support.actions.app"
