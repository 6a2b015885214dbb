"""Settings for the benchmarks on one MariaDB database; bench/admin_1m.py adds
django-celery-results' admin (CELERY_SA_BENCH_WITH_DJANGO_CELERY_RESULTS=1)."""

import os

import environ

SECRET_KEY = "celery-sa-bench"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "celery_sa",
]
if os.environ.get("CELERY_SA_BENCH_WITH_DJANGO_CELERY_RESULTS"):
    INSTALLED_APPS.append("django_celery_results")
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
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
DATABASES = {"default": environ.Env.db_url_config(os.environ["CELERY_SA_BENCH_DATABASE_URL"])}
DATABASE_ROUTERS = ["celery_sa.routers.ResultDatabaseRouter"]
CELERY_RESULT_BACKEND = "db+" + os.environ["CELERY_SA_BENCH_DATABASE_URL"]
CELERY_RESULT_EXTENDED = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
