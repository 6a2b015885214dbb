"""Housekeeping of the result tables: the batched purge (``purge``), counts over a window
(``stats``) and the ages people type (``durations``). ``manage.py celery_sa_purge`` and
``celery_sa_stats`` are the commands over them; ``celery_sa.purge`` the beat task."""
