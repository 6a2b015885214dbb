"""A MariaDB database of a benchmark's own, for bench/settings.py, dropped afterwards; a client
signed in to the admin over it, and the time its pages take."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def scratch_database(name: str, keep: bool = False) -> Iterator[None]:
    """Create database ``name`` on CELERY_SA_BENCH_MYSQL_URL's server (default
    mysql://root@127.0.0.1:3306), point bench/settings.py at it, drop it at the end; with
    ``keep``, reuse it when it exists and leave it in place for the next run."""
    from sqlalchemy import create_engine, text

    server = os.environ.get("CELERY_SA_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306")
    os.environ["CELERY_SA_BENCH_DATABASE_URL"] = f"{server}/{name}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if not keep:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(text(f"CREATE DATABASE IF NOT EXISTS {name}"))
    try:
        yield
    finally:
        if not keep:
            with engine.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


def in_scratch_database(name: str, keep: bool, run: Callable[[], None]) -> None:
    """``run()`` inside :func:`scratch_database`, saying afterwards when it was kept."""
    with scratch_database(name, keep=keep):
        run()
    if keep:
        print(f"kept database {name}")


def setup_django() -> None:
    """Django set up on bench/settings.py (inside :func:`scratch_database`)."""
    import django

    django.setup()


def signed_in_client() -> Any:
    """A test client signed in as the superuser ``bench`` (after :func:`setup_django` and
    ``migrate``)."""
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    user = User.objects.filter(username="bench").first()
    client.force_login(user or User.objects.create_superuser("bench", password="bench"))
    return client


def timings(client: Any, url: str, runs: int, said: Callable[[Any], str] = str) -> list[float]:
    """Milliseconds of each of ``runs`` requests of ``url`` after one warm-up; a page that
    does not answer 200 ends the benchmark (``said(response)`` says why)."""
    found = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}: {said(response)}")
        if attempt:
            found.append(elapsed)
    return found
