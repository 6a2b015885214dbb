"""The celery_sa demo project. Importing it loads the Celery app, as Django's Celery guide says."""

from project.celery import app as celery_app

__all__ = ["celery_app"]
