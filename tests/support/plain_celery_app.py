"""A Celery app with no Django at all, as a non-Django worker on the same tables has:
its configuration from the environment, celery_sa's backend by its URL alone."""

from __future__ import annotations

import os

from celery import Celery

app = Celery(
    "plain",
    broker=os.environ["CELERY_BROKER_URL"],
    backend=os.environ["CELERY_RESULT_BACKEND"],
    include=["tests.support.backend_tasks"],
)
app.conf.result_extended = True
app.conf.task_track_started = True
app.conf.task_default_queue = os.environ["CELERY_TASK_DEFAULT_QUEUE"]
