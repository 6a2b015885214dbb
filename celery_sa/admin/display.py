"""How the admin shows a task's fields: runtimes, states, decoded values, tracebacks.
The HTML carries classes and data attributes only; static/celery_sa/admin.css styles it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from celery_sa.admin.decoding import Decoded
from celery_sa.admin.expressions import value_of
from celery_sa.models import TaskResult

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise


def format_runtime(seconds: float) -> str:
    """``0.042 s``, ``12.5 s``, ``3 min 20 s``, ``2 h 5 min``."""
    if seconds < 10:
        # Translators: a task's runtime in seconds ("s"), e.g. "0.042 s".
        return gettext("%(seconds).3f s") % {"seconds": seconds}
    if seconds < 60:
        # Translators: a task's runtime in seconds ("s"), e.g. "12.5 s".
        return gettext("%(seconds).1f s") % {"seconds": seconds}
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        # Translators: a task's runtime in minutes ("min") and seconds ("s").
        return gettext("%(minutes)d min %(seconds)d s") % {"minutes": minutes, "seconds": rest}
    hours, minutes = divmod(minutes, 60)
    # Translators: a task's runtime in hours ("h") and minutes ("min").
    return gettext("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}


def state_badge(status: str | None) -> SafeString:
    """A state in its colour (the stylesheet's, by ``data-status``)."""
    return format_html(
        '<span class="celery-sa-status" data-status="{}">{}</span>', status or "", status or "—"
    )


def decoded_html(value: Decoded | None) -> SafeString:
    if value is None:
        return mark_safe('<span class="celery-sa-empty">—</span>')
    marker = (
        format_html('<p class="celery-sa-marker"><strong>{}</strong></p>', value.problem)
        if value.problem
        else ""
    )
    return format_html('{}<pre class="celery-sa-value">{}</pre>', marker, value.text)


def traceback_html(traceback: str | None) -> SafeString:
    if not traceback:
        return decoded_html(None)
    return format_html('<pre class="celery-sa-traceback">{}</pre>', traceback)


def value_view(column: str, description: _StrOrPromise) -> Callable[[Any, TaskResult], SafeString]:
    """A read-only field of the task page: ``column``'s value, decoded."""

    @admin.display(description=description)
    def view(model_admin: Any, obj: TaskResult) -> SafeString:
        return decoded_html(value_of(obj, column))

    return view
