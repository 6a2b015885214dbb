"""The result database: ``CELERY_RESULT_BACKEND`` read (``url``) and the Django alias that
reads the same tables resolved (``alias``)."""

from celery_sa.database.alias import ResultDatabase, reset, result_alias, result_database

__all__ = ["ResultDatabase", "reset", "result_alias", "result_database"]
