"""The real services on their standard local ports, found when their variables are not set:
the README's test command then uses what a machine has, as `.ci/run` names it. Read by
tests/settings.py before anything else (no pytest here); a variable already set wins, and
CELERY_SA_TEST_DISCOVER=0 looks for nothing."""

from __future__ import annotations

import contextlib
import os

DEFAULTS = {
    "CELERY_SA_TEST_MYSQL_URL": "mysql://root@127.0.0.1:3306/test",
    "CELERY_SA_TEST_POSTGRES_URL": "postgres://postgres@127.0.0.1:5432/test",
    "CELERY_SA_TEST_REDIS_URL": "redis://127.0.0.1:6379/0",
    "CELERY_SA_TEST_RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672//",
}
"""Each service's variable and the URL tried when it is not set: the machine's defaults."""
FOUND = "CELERY_SA_TEST_FOUND"
"""Where discovery notes the variables it set (the summary names them): the same in every
pytest-xdist worker, which inherit the environment."""
TIMEOUT = 2


def discover() -> None:
    """Set each service variable that is not set to its default URL when a login there
    succeeds; note which in ``CELERY_SA_TEST_FOUND``. Once per run: workers inherit it."""
    if FOUND in os.environ or os.environ.get("CELERY_SA_TEST_DISCOVER") == "0":
        return
    found = []
    for variable, url in DEFAULTS.items():
        if os.environ.get(variable):
            continue
        if answers(url):
            os.environ[variable] = url
            found.append(variable)
    os.environ[FOUND] = ",".join(found)


def answers(url: str) -> bool:
    """Whether a client logs in at ``url`` within a few seconds."""
    with contextlib.suppress(Exception):  # refused, unknown user, no driver: not there
        if url.startswith(("mysql", "postgres")):
            return _database_answers(url)
        return _broker_answers(url)
    return False


def _database_answers(url: str) -> bool:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    sqlalchemy_url = url.replace("postgres://", "postgresql+psycopg://", 1)
    options = {"connect_timeout": TIMEOUT}
    engine = create_engine(sqlalchemy_url, poolclass=NullPool, connect_args=options)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    return True


def _broker_answers(url: str) -> bool:
    from kombu.connection import Connection

    with Connection(url, connect_timeout=TIMEOUT) as connection:  # type: ignore[no-untyped-call]
        connection.ensure_connection(max_retries=1, timeout=TIMEOUT)
    return True
