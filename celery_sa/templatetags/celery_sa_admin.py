"""Template filters of celery_sa's admin templates."""

from __future__ import annotations

from datetime import timedelta

from django import template
from django.utils.formats import number_format
from django.utils.translation import ngettext

from celery_sa.admin.display import format_runtime
from celery_sa.reports.runtimes import Runtime

register = template.Library()


@register.filter
def thousands(value: int) -> str:
    """``1234567`` -> ``"1,234,567"`` (in English): counts in the millions stay readable,
    grouped as the active language groups digits."""
    return number_format(int(value), force_grouping=True)


@register.filter
def percent(value: float) -> str:
    """``0.1234`` -> ``"12.3%"``."""
    return f"{number_format(value * 100, decimal_pos=1)}%"


@register.filter
def duration_label(span: timedelta) -> str:
    """A window's length as its button says it: ``1 hour``, ``24 hours``, ``7 days``."""
    hours = int(span.total_seconds() // 3600)
    if hours < 48:
        return ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}
    days = hours // 24
    return ngettext("%(count)d day", "%(count)d days", days) % {"count": days}


@register.filter
def quantile(runtime: Runtime, share: float) -> str:
    """A name's runtime quantile, as the task list writes runtimes."""
    return format_runtime(runtime.quantile(float(share)))
