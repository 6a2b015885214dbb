"""The result database on the Django side: ``CELERY_RESULT_BACKEND`` read (``url``), the
Django alias that reads the same tables resolved (``alias``), and each database's
``DATABASES`` entry and ORM helpers (``vendors``)."""

from celery_sa.db.alias import ResultDatabase, reset, result_alias, result_database

__all__ = ["ResultDatabase", "reset", "result_alias", "result_database"]
