"""A minimal Django project that uses celery_sa as a user installs it: from the built wheel,
in a virtualenv of its own, never from the repository (see .ci/wheel)."""

import os
from pathlib import Path

DATA = Path(os.environ["CELERY_SA_WHEEL_DATA"])
SECRET_KEY = "celery-sa-wheel-check"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "celery_sa",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA / "django.sqlite3"}}
DATABASE_ROUTERS = ["celery_sa.routers.ResultDatabaseRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
CELERY_RESULT_BACKEND = f"celery_sa+sqlite:///{DATA / 'results.sqlite3'}"
CELERY_RESULT_EXTENDED = True
