"""The result tables: their safe schema (``schema``), the DDL SQLAlchemy has no construct
for (``ddl``), the plan that upgrades live tables (``upgrade``), and the fix to Celery's own
models (``compat``). ``manage.py celery_sa_tables`` is the command over them."""
