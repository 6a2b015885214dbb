"""The result database on the Django side: ``CELERY_RESULT_BACKEND`` read (``url``), the
Django alias that reads the same tables resolved (``alias``), each database's
``DATABASES`` entry and ORM helpers (``vendors``), and an outage told apart from a table
that cannot be read (``outage``)."""

from celery_sa.db.alias import ResultDatabase, reset, result_alias, result_database

__all__ = ["ResultDatabase", "reset", "result_alias", "result_database"]
