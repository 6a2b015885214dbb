"""celery_sa's result backend: Celery's database backend rows, written in one statement,
read in bulk, with native chords. Switch it on in Celery's configuration::

    result_backend = "celery_sa+mysql://user:password@host/db"

(``celery_sa+`` in front of the SQLAlchemy URL, where Celery's backend has ``db+``.)
"""

from celery_sa.backend.backend import DatabaseBackend

__all__ = ["DatabaseBackend"]
