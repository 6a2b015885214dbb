"""Template filters of celery_sa's admin templates."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def thousands(value: int) -> str:
    """``1234567`` -> ``"1,234,567"``: counts in the millions stay readable."""
    return f"{int(value):,}"
