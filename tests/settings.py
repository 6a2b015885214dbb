"""Settings of the test suite: SQLite by default, plus the real services when given.

Service URLs come from the environment (``.ci/run`` sets them from this machine's
services), or are found on their standard local ports when not set; each one adds a Django
database alias or a broker the tests can use:

- ``CELERY_SA_TEST_MYSQL_URL``    e.g. ``mysql://root@127.0.0.1:3306/test``   (alias "mysql")
- ``CELERY_SA_TEST_POSTGRES_URL`` e.g. ``postgres://postgres@127.0.0.1:5432/test``
  (alias "postgresql")
- ``CELERY_SA_TEST_REDIS_URL``    e.g. ``redis://127.0.0.1:6379/0``
- ``CELERY_SA_TEST_RABBITMQ_URL`` e.g. ``amqp://guest:guest@127.0.0.1:5672//``
"""

import os
from pathlib import Path

import django
import environ

from tests.support.discovery import discover

# The services whose variables are not set, where they answer on their standard local
# ports with the machine's default logins (tests/support/discovery.py).
discover()

BASE_DIR = Path(__file__).resolve().parent.parent
# A tag keeps runs of the suite that share the machine apart (CI runs two version sets
# at once), and the processes of one run (pytest-xdist's workers, gw0, gw1, …): their own
# SQLite folder, test databases, database users and schemas.
TEST_TAG = "_".join(
    filter(None, [os.environ.get("CELERY_SA_TEST_TAG", ""), os.environ.get("PYTEST_XDIST_WORKER")])
)
TEST_DIR = BASE_DIR / "var" / ("tests-" + TEST_TAG if TEST_TAG else "tests")
TEST_DATABASE = "test_celery_sa" + (f"_{TEST_TAG}" if TEST_TAG else "")
TEST_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = "celery-sa-tests"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
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
# A strict Content Security Policy, as a careful site sets it: the admin's pages, Django's
# and celery_sa's, must need no inline style or script. Django 6 sends it; Django 5.2 has no
# CSP middleware, and the browser test hands Chromium the same policy itself.
SECURE_CSP = {
    "default-src": ["'self'"],
    "style-src": ["'self'"],
    "script-src": ["'self'"],
    "img-src": ["'self'", "data:"],
}
if django.VERSION >= (6, 0):
    MIDDLEWARE.append("django.middleware.csp.ContentSecurityPolicyMiddleware")
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
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(TEST_DIR / "default.sqlite3"),
        "TEST": {"NAME": str(TEST_DIR / "test_default.sqlite3")},
    }
}
SERVICE_ALIASES = {"mysql": "CELERY_SA_TEST_MYSQL_URL", "postgresql": "CELERY_SA_TEST_POSTGRES_URL"}
for alias, variable in SERVICE_ALIASES.items():
    if os.environ.get(variable):
        DATABASES[alias] = environ.Env.db_url_config(os.environ[variable])
        DATABASES[alias]["TEST"] = {"NAME": TEST_DATABASE}
# The alias celery_sa registers for a read replica given as a URL (tests/db/
# test_read_replica.py sets one): known from the start, so that Django's test cases let it
# connect; until then a mirror of the default database.
DATABASES["celery_sa_replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}
DATABASE_ROUTERS = ["celery_sa.routers.ResultDatabaseRouter"]

# The embedded default: results in a SQLite file of their own (a derived alias).
CELERY_RESULT_BACKEND = f"db+sqlite:///{TEST_DIR / 'results.sqlite3'}"
CELERY_RESULT_EXTENDED = True
