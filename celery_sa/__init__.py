"""celery_sa: Django admin, tables and sessions for Celery's SQLAlchemy result backend."""

__version__ = "0.3.0"
