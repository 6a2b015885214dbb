"""Template filters of celery_sa's admin templates."""

from __future__ import annotations

from django import template
from django.utils.formats import number_format

register = template.Library()


@register.filter
def thousands(value: int) -> str:
    """``1234567`` -> ``"1,234,567"`` (in English): counts in the millions stay readable,
    grouped as the active language groups digits."""
    return number_format(int(value), force_grouping=True)
