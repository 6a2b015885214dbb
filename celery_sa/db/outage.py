"""A result database that stops answering (a restart, a failover), told apart from a table
it cannot read: the pages that read results answer 503 until it is back, and the next
request after that works.

Django itself drops a broken connection when a request ends (``close_old_connections``:
after an error it pings the connection, and ``CONN_MAX_AGE = 0``, the default and what the
alias celery_sa registers uses, closes every connection then anyway). :func:`discard_if_lost`
does it at once, where the error is caught: the next query opens a new connection whatever
calls it (a test client, code outside a request), and a persistent connection
(``CONN_MAX_AGE > 0`` on an alias of your own) fails one request at most.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from django.db import Error, InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from celery_sa.db.alias import result_alias
from celery_sa.errors import not_answering, unreadable_table


@dataclass(frozen=True)
class ReadFailure:
    """Why the result tables could not be read, said for a person."""

    message: str
    outage: bool
    """The database did not answer (try again later: 503), rather than answered that the
    table cannot be read (a command fixes it)."""


def read_failure(table: str, exc: Error) -> ReadFailure:
    """What reading ``table`` from the result database raising ``exc`` means."""
    connection = connections[result_alias()]
    if discard_if_lost(connection, exc):
        password = str(connection.settings_dict.get("PASSWORD") or "")
        return ReadFailure(not_answering(exc, password), outage=True)
    return ReadFailure(unreadable_table(table, exc), outage=False)


def discard_if_lost(connection: BaseDatabaseWrapper, exc: Error) -> bool:
    """Whether ``exc`` came from ``connection`` failing (refused, or lost) rather than from a
    query the database answered; a lost connection is closed.

    Drivers raise OperationalError for both (MySQL's unknown column, SQLite's missing table),
    so the connection says which: none after the error (refused at connect, or dropped by
    Django when the rollback failed), or one that no longer answers a ping.
    """
    if not isinstance(exc, (OperationalError, InterfaceError)) or not connection.errors_occurred:
        return False
    if connection.connection is None:
        return True
    if connection.is_usable():
        return False
    with suppress(Error):  # the socket is gone: closing it may fail too, and still forgets it
        connection.close()
    return True
