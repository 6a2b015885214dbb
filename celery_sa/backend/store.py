"""Where the backend keeps results: one pooled engine per process and database, and the
tables it writes, checked (and created when missing) once per process.

Nothing here reads Django settings: a worker without Django gets the same store.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celery import states
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    Sequence,
    Table,
    bindparam,
    create_engine,
    func,
    inspect,
    true,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Executable

from celery_sa.sql import vendors
from celery_sa.sql.chords import add_chord_columns, missing_chord_columns
from celery_sa.sql.process_engines import ProcessEngines
from celery_sa.sql.schema import PRECISE_TIME, ResultTables, result_tables
from celery_sa.sql.vendors import Vendor

logger = logging.getLogger(__name__)

# celery_sa's own columns of the task table, which Celery's backend neither reads nor
# writes: what each keeps.
OWN_COLUMNS = {"date_started": "start times", "date_sent": "sent times"}

_engines = ProcessEngines()
_stores: dict[tuple[str, ...], ResultStore] = {}
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # Another thread may have held the lock when the process forked. The stores stay: their
    # engines' pools are emptied by ProcessEngines.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass(frozen=True)
class ResultStore:
    """The engine and tables of one result database."""

    engine: Engine
    vendor: Vendor
    task: Table
    """Celery's own task table (its column types, so rows are byte for byte Celery's),
    with celery_sa's ``date_started`` and ``date_sent`` where the live table has them."""
    tables: ResultTables
    """celery_sa's tables, for the chord counter."""
    missing: frozenset[str]
    """Celery's columns the live task table lacks."""
    keeps_attempts: bool
    """Whether the database has the attempt table (it is created when missing)."""
    keeps_members: bool
    """Whether the database has the group member table (it is created when missing)."""
    saves_groups: bool
    """Whether Celery's group model can insert into the live group table: not into one
    made by Celery 4 on MariaDB (no sequence) until ``celery_sa_tables upgrade``."""
    sessions: sessionmaker[Session]
    """ORM sessions on the pooled engine, for the reads Celery's backend does itself."""
    _upserts: dict[tuple[frozenset[str], bool], Executable] = field(default_factory=dict)

    def upsert(self, columns: frozenset[str]) -> Executable:
        """The statement that stores a result with these columns, its values bound by name:
        built once, so SQLAlchemy compiles it once per process."""
        return self._statement(columns, missing_only=False)

    def insert_missing(self, columns: frozenset[str]) -> Executable:
        """The statement that writes a row with these columns where the task has none (its
        row's id from the table's sequence, as :meth:`upsert`'s)."""
        return self._statement(columns, missing_only=True)

    def _statement(self, columns: frozenset[str], missing_only: bool) -> Executable:
        statement = self._upserts.get((columns, missing_only))
        if statement is None:
            task = self.task
            values = {name: bindparam(name, type_=task.c[name].type) for name in sorted(columns)}
            # As Celery's backend: nothing overwrites a SUCCESS (a redelivered task's rerun).
            keep = true() if missing_only else func.coalesce(task.c.status, "") == states.SUCCESS
            statement = self.vendor.writes.upsert(task, values, "task_id", keep)
            self._upserts[columns, missing_only] = statement
        return statement

    def keeps(self, column: str) -> bool:
        """Whether the live task table has celery_sa's column ``column`` (OWN_COLUMNS)."""
        return column in self.task.c


@dataclass(frozen=True)
class StoreConfig:
    """Where a backend keeps its results, from Celery's configuration."""

    url: str
    engine_options: Mapping[str, Any]
    celery_table: Table
    """Celery's own task model's table."""
    names: Mapping[str, str]
    """``database_table_names``."""
    schemas: Mapping[str, str | None]
    """``database_table_schemas``."""

    @property
    def key(self) -> tuple[str, ...]:
        """Backends with the same key share a store (and its engine) in a process."""
        options = repr(sorted(self.engine_options.items()))
        return (self.url, options, self.celery_table.fullname, repr(self.names))


def result_store(config: StoreConfig) -> ResultStore:
    """The store of ``config`` in this process, made (and its tables checked) on first use."""
    store = _stores.get(config.key)
    if store is None:
        with _lock:
            store = _stores.get(config.key)
            if store is None:
                store = _stores[config.key] = _make_store(config)
    return store


def dispose_stores() -> None:
    """Close every pooled connection and forget the stores (tests, settings changed)."""
    with _lock:
        _stores.clear()
        _engines.dispose()


def _make_store(config: StoreConfig) -> ResultStore:
    url = config.url
    # Before the engine: an unsupported database is refused without a connection.
    vendor = vendors.get(make_url(url).get_backend_name())
    options = vendors.engine_options(make_url(url), config.engine_options)
    engine = _engines.get(config.key, lambda: create_engine(url, **options))
    tables = result_tables(config.names, config.schemas)
    live_columns, has_sequence, saves_groups = _prepare(engine, tables)
    # Celery's columns as the live table has them: one Celery made before 5.3 lacks some
    # (stamps, children), which are then neither written nor read; one made on MariaDB by an
    # old SQLAlchemy has no sequence, and AUTO_INCREMENT picks its ids.
    columns = [
        column._copy()
        if column.name != "id" or has_sequence
        else Column("id", column.type, primary_key=True, autoincrement=True)
        for column in config.celery_table.columns
        if column.name in live_columns
    ]
    columns += [
        Column(name, PRECISE_TIME, nullable=True) for name in OWN_COLUMNS if name in live_columns
    ]
    celery_table = config.celery_table
    task = Table(celery_table.name, MetaData(), *columns, schema=celery_table.schema)
    lacking = [name for name in OWN_COLUMNS if name not in live_columns]
    if lacking:
        logger.warning(
            "%s lacks %s: %s are not kept. `manage.py celery_sa_tables upgrade` adds %s.",
            tables.task.fullname,
            " and ".join(lacking),
            " and ".join(OWN_COLUMNS[name] for name in lacking),
            "them" if len(lacking) > 1 else "it",
        )
    return ResultStore(
        engine=engine,
        vendor=vendor,
        task=task,
        tables=tables,
        missing=frozenset(c.name for c in celery_table.columns if c.name not in live_columns),
        keeps_attempts=_exists(engine, tables.attempt),
        keeps_members=_exists(engine, tables.member),
        saves_groups=saves_groups,
        sessions=sessionmaker(engine, expire_on_commit=False),
    )


def _prepare(engine: Engine, tables: ResultTables) -> tuple[set[str], bool, bool]:
    """Create the tables that are missing (celery_sa's safe types, as ``celery_sa_tables
    create`` makes them); return the live task table's columns, whether the database has
    the sequence Celery draws its ids from, and whether Celery's model can insert groups
    (a group table made by Celery 4 on MariaDB has no sequence)."""
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
    _add_chord_columns(engine, tables)
    task = tables.task
    with engine.connect() as connection:
        inspector = inspect(connection)
        columns = inspector.get_columns(task.name, schema=task.schema)
        has_sequence = _has_sequence(connection, task)
        group_sequence = _has_sequence(connection, tables.group)
    saves_groups = group_sequence or not engine.dialect.supports_sequences
    return {column["name"] for column in columns}, has_sequence, saves_groups


def _has_sequence(connection: Connection, table: Table) -> bool:
    """Whether the database has the sequence Celery draws ``table``'s ids from."""
    sequence = table.c.id.default
    return bool(
        connection.dialect.supports_sequences
        and isinstance(sequence, Sequence)
        and inspect(connection).has_sequence(sequence.name, schema=sequence.schema)
    )


def _add_chord_columns(engine: Engine, tables: ResultTables) -> None:
    """Add the chord table's columns of celery_sa 0.4 (nullable: instant on every database)
    where a 0.2 or 0.3 table lacks them, as missing tables are created."""
    with engine.connect() as connection:
        missing = missing_chord_columns(connection, tables)
    if not missing:
        return
    try:
        with engine.begin() as connection:
            add_chord_columns(connection, tables, missing)
    except SQLAlchemyError as exc:
        with engine.connect() as connection:
            missing = missing_chord_columns(connection, tables)  # another process's, maybe
        if missing:
            logger.error(
                "%s lacks the columns %s, which could not be added (%s): chords fail until "
                "`manage.py celery_sa_tables upgrade` adds them.",
                tables.chord.fullname,
                ", ".join(missing),
                type(exc).__name__,
            )
        return
    logger.warning("Added the columns %s to %s.", ", ".join(missing), tables.chord.fullname)


def _exists(engine: Engine, table: Table) -> bool:
    with engine.connect() as connection:
        return bool(inspect(connection).has_table(table.name, schema=table.schema))
