"""What the admin's actions do to Celery: send tasks again, revoke them."""

from __future__ import annotations

from typing import Any

from celery import current_app
from celery.states import READY_STATES
from django.db.models import QuerySet
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from celery_sa.admin.decoding import decode
from celery_sa.conf import app_settings


def celery_app() -> Any:
    """``CELERY_SA_CELERY_APP`` (a dotted path), else Celery's current app."""
    path = app_settings.celery_app
    return import_string(path) if path else current_app._get_current_object()


def rerun_tasks(queryset: QuerySet[Any]) -> tuple[list[str], list[str]]:
    """Send each selected task again with the same name, args and kwargs.

    Returns the new task ids and, for rows that cannot be sent, why (no extended columns,
    arguments that cannot be decoded safely).
    """
    app = celery_app()
    sent: list[str] = []
    problems: list[str] = []
    for row in queryset.only("task_id", "name", "args", "kwargs"):
        if not row.name:
            problems.append(
                # Translators: "task_id" is a Celery task id; CELERY_RESULT_EXTENDED is a setting.
                _("Task %(task_id)s: no task name stored; re-running needs CELERY_RESULT_EXTENDED.")
                % {"task_id": row.task_id}
            )
            continue
        args, kwargs = decode(row.args), decode(row.kwargs)
        if args is None or kwargs is None or args.problem or kwargs.problem:
            problems.append(
                # Translators: "task_id" is a Celery task id; args/kwargs are the task's
                # positional and keyword arguments.
                _("Task %(task_id)s: its args/kwargs cannot be read safely.")
                % {"task_id": row.task_id}
            )
            continue
        result = app.send_task(row.name, args=args.value, kwargs=kwargs.value)
        sent.append(result.id)
    return sent, problems


def revoke_tasks(queryset: QuerySet[Any]) -> tuple[list[str], str]:
    """Revoke the selected tasks that have not finished; returns their ids, or a problem."""
    ids = list(queryset.exclude(status__in=READY_STATES).values_list("task_id", flat=True))
    if not ids:
        return [], ""
    try:
        celery_app().control.revoke(ids)
    except Exception as exc:  # the broker decides what fails (some cannot broadcast)
        # Translators: "error" is the broker's own message, in English.
        return [], _("Cannot revoke through the broker: %(error)s") % {"error": exc}
    return ids, ""
