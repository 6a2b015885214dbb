"""What the admin's actions do to Celery: send tasks again, revoke them.

Re-running sends what a row says, and anyone who can write to the result table writes
rows: only task names the Celery app has registered (and ``CELERY_SA_RERUN_TASKS``
allows) are sent, after a page that shows each name and its arguments, and only if the
rows are still what that page showed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from celery import current_app
from celery.states import READY_STATES
from django.db.models import QuerySet
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from celery_sa.admin.decoding import Decoded
from celery_sa.admin.expressions import value_of, with_value_heads
from celery_sa.conf import app_settings

ARGUMENT_COLUMNS = ("args", "kwargs")
CELERY_OWN = "celery.*"  # chord_unlock, backend_cleanup, …: never re-run from a row


def celery_app() -> Any:
    """``CELERY_SA_CELERY_APP`` (a dotted path), else Celery's current app."""
    path = app_settings.celery_app
    return import_string(path) if path else current_app._get_current_object()


@dataclass(frozen=True)
class Rerun:
    """A selected row as the confirmation page shows it and as it would be sent."""

    pk: int
    task_id: str
    name: str
    args: Decoded | None
    kwargs: Decoded | None
    problem: str
    """Why it will not be sent ("" when it will)."""
    fingerprint: str
    """What the row said: a changed row is not sent on the strength of the old page."""


def plan_rerun(queryset: QuerySet[Any]) -> list[Rerun]:
    """Each selected row, newest first, with what stops it being sent again."""
    app = celery_app()
    allowed = rerunnable(app)
    rows = with_value_heads(queryset.only("task_id", "name"), ARGUMENT_COLUMNS)
    plan = []
    for row in rows.order_by("-date_done", "-id"):
        args, kwargs = value_of(row, "args"), value_of(row, "kwargs")
        plan.append(
            Rerun(
                pk=row.pk,
                task_id=row.task_id or "",
                name=row.name or "",
                args=args,
                kwargs=kwargs,
                problem=_problem(row.task_id or "", row.name, args, kwargs, allowed),
                fingerprint=_fingerprint(row),
            )
        )
    return plan


def plan_digest(plan: Iterable[Rerun]) -> str:
    """One digest of the rows as shown, for the confirmation form to carry."""
    return hashlib.sha256("\n".join(r.fingerprint for r in plan).encode()).hexdigest()


def send_reruns(plan: Iterable[Rerun]) -> list[str]:
    """Send the rows that have no problem; returns the new task ids."""
    app = celery_app()
    return [
        app.send_task(r.name, args=r.args.value, kwargs=r.kwargs.value).id  # type: ignore[union-attr]
        for r in plan
        if not r.problem
    ]


def rerunnable(app: Any) -> set[str]:
    """The task names the app has registered, as a worker imports them, that
    ``CELERY_SA_RERUN_TASKS`` allows (every one but Celery's own when it is unset)."""
    app.loader.import_default_modules()  # CELERY_IMPORTS and autodiscovered tasks modules
    patterns = app_settings.rerun_tasks
    names = {name for name in app.tasks if not fnmatchcase(name, CELERY_OWN)}
    if patterns is None:
        return names
    return {name for name in names if any(fnmatchcase(name, p) for p in patterns)}


def _problem(
    task_id: str, name: str | None, args: Decoded | None, kwargs: Decoded | None, allowed: set[str]
) -> str:
    if not name:
        # Translators: "task_id" is a Celery task id; CELERY_RESULT_EXTENDED is a setting.
        return _(
            "Task %(task_id)s: no task name stored; re-running needs CELERY_RESULT_EXTENDED."
        ) % {"task_id": task_id}
    if name not in allowed:
        # Translators: "task_id" is a Celery task id, "name" a task name;
        # CELERY_SA_RERUN_TASKS is a setting.
        return _(
            "Task %(task_id)s: %(name)s is not a task the Celery app has registered "
            "(or CELERY_SA_RERUN_TASKS leaves it out)."
        ) % {"task_id": task_id, "name": name}
    if args is None or kwargs is None or args.problem or kwargs.problem:
        # Translators: "task_id" is a Celery task id; args/kwargs are the task's positional
        # and keyword arguments.
        return _("Task %(task_id)s: its args/kwargs cannot be read safely.") % {"task_id": task_id}
    if not isinstance(args.value, (list, tuple)) or not isinstance(kwargs.value, dict):
        # Translators: "task_id" is a Celery task id; args/kwargs as above.
        return _("Task %(task_id)s: its args are not a list or its kwargs not a mapping.") % {
            "task_id": task_id
        }
    return ""


def _fingerprint(row: Any) -> str:
    digest = hashlib.sha256(f"{row.pk}\0{row.task_id}\0{row.name}".encode())
    for column in ARGUMENT_COLUMNS:
        digest.update(b"\0" + bytes(getattr(row, f"{column}_head") or b"-"))
        digest.update(str(getattr(row, f"{column}_size")).encode())
    return digest.hexdigest()


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
