"""A MariaDB database of a benchmark's own, for bench/settings.py, dropped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


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
