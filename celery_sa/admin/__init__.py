"""Django admin over Celery's result tables: read-only, decoded, safe, fast on large tables.

Importing the package registers its admins (Django's autodiscovery imports it).
"""

from celery_sa.admin import chords, groups, overview, tasks  # noqa: F401
