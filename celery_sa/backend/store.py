"""Where the backend keeps results: one pooled engine per process and database, and the
tables it writes, checked (and created when missing) once per process.

Nothing here reads Django settings: a worker without Django gets the same store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Engine, MetaData, Table, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from celery_sa import dialects
from celery_sa.database.engines import ProcessEngines
from celery_sa.dialects import Database
from celery_sa.tables.schema import PRECISE_TIME, ResultTables, result_tables

logger = logging.getLogger(__name__)

_engines = ProcessEngines()
_stores: dict[tuple[Any, ...], ResultStore] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class ResultStore:
    """The engine and tables of one result database."""

    engine: Engine
    database: Database
    task: Table
    """Celery's own task table (its column types, so rows are byte for byte Celery's),
    with ``date_started`` where the live table has it."""
    tables: ResultTables
    """celery_sa's tables, for the chord counter."""
    sessions: sessionmaker[Session]
    """ORM sessions on the pooled engine, for the reads Celery's backend does itself."""

    @property
    def tracks_start(self) -> bool:
        return "date_started" in self.task.c


def result_store(
    url: str,
    engine_options: Mapping[str, Any],
    celery_table: Table,
    names: Mapping[str, str],
    schemas: Mapping[str, str | None],
) -> ResultStore:
    """The store of ``url`` in this process, made (and its tables checked) on first use."""
    key = (url, repr(sorted(engine_options.items())), celery_table.fullname, repr(names))
    store = _stores.get(key)
    if store is None:
        with _lock:
            store = _stores.get(key)
            if store is None:
                store = _stores[key] = _make_store(
                    key, url, engine_options, celery_table, names, schemas
                )
    return store


def dispose_stores() -> None:
    """Close every pooled connection and forget the stores (tests, settings changed)."""
    with _lock:
        _stores.clear()
        _engines.dispose()


def _make_store(
    key: tuple[Any, ...],
    url: str,
    engine_options: Mapping[str, Any],
    celery_table: Table,
    names: Mapping[str, str],
    schemas: Mapping[str, str | None],
) -> ResultStore:
    engine = _engines.get(key, lambda: create_engine(url, **engine_options))
    database = dialects.by_name(make_url(url).get_backend_name())
    if database is None:
        raise LookupError(f"celery_sa's result backend does not support {url!r}")
    tables = result_tables(names, schemas)
    live_columns = _prepare(engine, tables)
    task = celery_table.to_metadata(MetaData())
    if "date_started" in live_columns:
        task.append_column(Column("date_started", PRECISE_TIME, nullable=True))
    else:
        logger.warning(
            "%s has no date_started column: start times are not kept. "
            "`manage.py celery_sa_tables upgrade` adds it.",
            tables.task.fullname,
        )
    return ResultStore(
        engine=engine,
        database=database,
        task=task,
        tables=tables,
        sessions=sessionmaker(engine, expire_on_commit=False),
    )


def _prepare(engine: Engine, tables: ResultTables) -> set[str]:
    """Create the tables that are missing (celery_sa's safe types, as ``celery_sa_tables
    create`` makes them) and return the live task table's columns."""
    with engine.connect() as connection:
        inspector = inspect(connection)
        missing = [t for t in tables.all() if not inspector.has_table(t.name, schema=t.schema)]
    if missing:
        try:
            with engine.begin() as connection:
                tables.metadata.create_all(connection, tables=missing, checkfirst=True)
        except SQLAlchemyError:
            # Another process created them in the meantime; anything else shows below.
            logger.info("creating %s failed; checking again", [t.name for t in missing])
    with engine.connect() as connection:
        columns = inspect(connection).get_columns(tables.task.name, schema=tables.task.schema)
    return {column["name"] for column in columns}
