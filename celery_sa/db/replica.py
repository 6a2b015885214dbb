"""A read replica of the result database (``CELERY_SA_READ_REPLICA``): what only reads (the
admin's lists and pages, the overview, the metrics, ``celery_sa_stats``) reads there, inside
:func:`replica_reads`; everything else (actions, the purge, the table commands, every write)
stays on the primary. A replica that does not answer is skipped for a while, and the reads
go to the primary: :class:`ReplicaReads` says so, for the page to tell its reader.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from celery_sa.conf import app_settings
from celery_sa.db.adapters import get_operations
from celery_sa.db.adapters.base import Replication
from celery_sa.db.alias import install_alias
from celery_sa.db.url import (
    BACKEND_PREFIXES,
    database_identity,
    django_database_settings,
    parse_result_backend,
)
from celery_sa.errors import BackendURLError
from celery_sa.errors import translated as _

REPLICA_ALIAS = "celery_sa_replica"
"""The alias celery_sa registers for a replica given as a URL."""
RETRY_AFTER = 30.0
"""Seconds a replica that did not answer is left alone before it is tried again."""

_reading: ContextVar[str | None] = ContextVar("celery_sa_replica_reads", default=None)
_down_since: dict[str, float] = {}
_lock = threading.Lock()


def reading_alias() -> str | None:
    """The alias the result models read from now (inside :func:`replica_reads`, on a
    replica that answers); None: the primary."""
    return _reading.get()


def replica_alias() -> str | None:
    """The alias of ``CELERY_SA_READ_REPLICA`` (registered when it is a URL); None when no
    replica is set. :class:`~celery_sa.errors.BackendURLError` when it is neither an alias
    nor a URL celery_sa can read."""
    value = app_settings.read_replica
    if not value:
        return None
    if not isinstance(value, str):
        raise BackendURLError(_("CELERY_SA_READ_REPLICA must be an alias or a URL."))
    if value in connections.settings:
        return value
    url = parse_result_backend(value if value.startswith(BACKEND_PREFIXES) else f"db+{value}")
    config = django_database_settings(url)
    identity = database_identity(config)
    with _lock:
        current = connections.settings.get(REPLICA_ALIAS)
        if current is None or database_identity(current) != identity:
            configured = connections.configure_settings(
                {DEFAULT_DB_ALIAS: {}, REPLICA_ALIAS: config}
            )
            install_alias(REPLICA_ALIAS, configured[REPLICA_ALIAS], identity)
    return REPLICA_ALIAS


@dataclass(frozen=True)
class ReplicaReads:
    """Where the reads of a page go: ``alias`` (the replica) when it answers; otherwise the
    primary, with ``problem`` saying why."""

    alias: str
    answered: bool
    problem: str = ""

    def replication(self) -> Replication | None:
        """How far behind the primary the replica is (None: not known, or it is no
        replica); read from the replica itself."""
        if not self.answered:
            return None
        connection = connections[self.alias]
        try:
            return get_operations(connection).replication(connection)
        except (DatabaseError, LookupError):
            return None


@contextmanager
def replica_reads() -> Iterator[ReplicaReads | None]:
    """Within it, the result models' reads go to the read replica, when one is set and
    answers; yields what happened (None: no replica is set)."""
    alias = replica_alias()
    if alias is None:
        yield None
        return
    reads = _try(alias)
    token = _reading.set(alias if reads.answered else None)
    try:
        yield reads
    finally:
        _reading.reset(token)


def _try(alias: str) -> ReplicaReads:
    since = _down_since.get(alias)
    if since is not None and time.monotonic() - since < RETRY_AFTER:
        return ReplicaReads(alias, answered=False, problem=_down(alias))
    try:
        connections[alias].ensure_connection()
    except DatabaseError as exc:
        _down_since[alias] = time.monotonic()
        return ReplicaReads(alias, answered=False, problem=f"{_down(alias)} ({type(exc).__name__})")
    _down_since.pop(alias, None)
    return ReplicaReads(alias, answered=True)


def _down(alias: str) -> str:
    return _(
        "The read replica (%(alias)s) does not answer: these figures are read from the "
        "result database itself."
    ) % {"alias": alias}
