"""A fix to Celery's own result models, applied when celery_sa is installed.

Celery declares the ``id`` of ``celery_taskmeta``/``celery_tasksetmeta`` as INTEGER (BIGINT on
SQL Server only). With psycopg 3, SQLAlchemy casts every bound value to the declared type,
so once ids pass 2,147,483,647 each ``UPDATE … WHERE id = %(id)s::INTEGER`` fails with
"integer out of range", even on a BIGINT column that ``celery_sa_tables upgrade`` widened.
Declaring the ids BIGINT, as the tables now are, fixes it on every database.
"""

from __future__ import annotations

from celery_sa.sql.schema import BIGINT_ID


def widen_celery_ids() -> None:
    """Declare Celery's result model ids BIGINT (INTEGER on SQLite, which is 64-bit).

    Runs in every process that sets up Django with celery_sa installed, Celery workers
    included. A worker without Django can call it before it stores its first result.
    """
    from celery.backends.database import models

    for model in (models.Task, models.TaskSet):
        model.__table__.c.id.type = BIGINT_ID
