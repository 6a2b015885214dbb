"""Managing the result tables from Django: the plan that upgrades live tables (``upgrade``),
the tables each Celery version created (``origins``), running the DDL (``execute``), the
scripts printed for a DBA (``scripts``), and the fix to Celery's own models (``compat``).
``manage.py celery_sa_tables`` is the command over them; the tables themselves and their
DDL are :mod:`celery_sa.sql`'s."""
