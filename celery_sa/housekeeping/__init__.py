"""Housekeeping of the result tables: the batched purge (``purge``). ``manage.py
celery_sa_purge`` is the command over it; ``celery_sa.purge`` the beat task."""
