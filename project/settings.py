"""Settings of the celery_sa demo project, read from the environment and an optional .env.

With no environment at all everything runs on files under ``var/`` (git-ignored): SQLite for
Django and for Celery's results, and kombu's SQLAlchemy transport as the broker. See
``.env.example`` for every variable.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")))

DATA_DIR = Path(env.str("DEMO_DATA_DIR", default=str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env.str("SECRET_KEY", default="insecure-demo-key-change-me")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_TZ = True
# The admin follows the browser's language (LocaleMiddleware); commands speak this one.
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en-us")
USE_I18N = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "celery_sa",
    "project",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# Django's own database.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
DATABASE_ROUTERS = ["celery_sa.routers.ResultDatabaseRouter"]

# Celery, with Celery's own setting names (project/celery.py reads the CELERY_ namespace).
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=f"sqla+sqlite:///{DATA_DIR / 'broker.sqlite3'}"
)
# celery_sa's own result backend by default (celery_sa+…): the rows Celery's db+ backend
# writes, plus each task's start (runtimes), its sends and attempts, and native chords.
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND", default=f"celery_sa+sqlite:///{DATA_DIR / 'results.sqlite3'}"
)
CELERY_RESULT_EXTENDED = env.bool("CELERY_RESULT_EXTENDED", default=True)
CELERY_DATABASE_TABLE_NAMES = env.dict("CELERY_DATABASE_TABLE_NAMES", default={})
CELERY_DATABASE_TABLE_SCHEMAS = env.dict("CELERY_DATABASE_TABLE_SCHEMAS", default={})
CELERY_TASK_TRACK_STARTED = True
# With celery_sa's backend, a task's row is written as PENDING when it is sent: the admin
# shows tasks queued but not started, and the overview their time in the queue.
CELERY_SA_TRACK_SENT = env.bool(
    "CELERY_SA_TRACK_SENT", default=CELERY_RESULT_BACKEND.startswith("celery_sa+")
)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# Extra task modules for the worker to import (the tests load theirs this way).
CELERY_IMPORTS = env.list("CELERY_IMPORTS", default=[])
# Several processes write one SQLite file: wait for its lock rather than fail. (kombu's
# SQLAlchemy transport hands its transport options to create_engine.)
if CELERY_BROKER_URL.startswith("sqla+sqlite"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"connect_args": {"timeout": 30}}
if CELERY_RESULT_BACKEND.partition("+")[2].startswith("sqlite"):
    CELERY_DATABASE_ENGINE_OPTIONS = {"connect_args": {"timeout": 30}}
# Delivery, retry and engine knobs: Celery's defaults unless the environment sets them.
# docs/guides/production.md says which values survive a database restart and a killed
# worker (tests/backend/test_reliability.py runs its workers with them).
for _name, _cast in {
    "CELERY_TASK_ACKS_LATE": env.bool,
    "CELERY_TASK_REJECT_ON_WORKER_LOST": env.bool,
    "CELERY_WORKER_PREFETCH_MULTIPLIER": env.int,
    "CELERY_RESULT_BACKEND_ALWAYS_RETRY": env.bool,
    "CELERY_RESULT_BACKEND_MAX_RETRIES": env.int,
    "CELERY_RESULT_BACKEND_MAX_SLEEP_BETWEEN_RETRIES_MS": env.int,
    "CELERY_SA_BACKEND_RETRY_TIMEOUT": env.float,
    "CELERY_SA_CHORD_SWEEP_INTERVAL": env.float,
    # kombu's transport options (JSON), e.g. {"polling_interval": 0.1}: a Redis consumer's
    # blocking read then returns within 0.1 s, and a worker stops that much sooner.
    "CELERY_BROKER_TRANSPORT_OPTIONS": env.json,
    # What the result backend passes to create_engine (JSON); it replaces Celery's default
    # {"pool_pre_ping": true, "pool_recycle": 3600}.
    "CELERY_DATABASE_ENGINE_OPTIONS": env.json,
}.items():
    if _name in env.ENVIRON:
        globals()[_name] = _cast(_name)

# The demo's non-ORM data, used through celery_sa's SessionTask.
CELERY_SA_DATABASE_URL = env.str(
    "CELERY_SA_DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'books.sqlite3'}"
)
# Engine options for every SessionTask database (JSON), over celery_sa's defaults.
CELERY_SA_ENGINE_OPTIONS = env.json("CELERY_SA_ENGINE_OPTIONS", default={})

# Only the all-files default gets a demo superuser with a printed password.
EMBEDDED_DEFAULT = "DATABASE_URL" not in env.ENVIRON
