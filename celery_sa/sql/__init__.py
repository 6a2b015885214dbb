"""The SQL celery_sa runs, without Django: what a Celery worker on celery_sa's backend
imports, and what the Django side builds on.

The result tables (``schema``), the DDL SQLAlchemy has no construct for (``ddl``), the tables
as they are (``state``, read from a live database by ``live``), the chord tables' cleanup and
later columns (``chords``), engines kept per process (``process_engines``), text marked for
translation (``text``) and everything that differs by database (``vendors``). Names, schemas
and URLs are passed in; nothing here reads settings.
"""
