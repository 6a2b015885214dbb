"""Database servers of a test's own, to stop, start and kill at will (the failover tests):
MariaDB's and PostgreSQL's behind one interface, so that a test can run over both."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from tests.support.mariadb import PrivateMariaDB
from tests.support.postgres import PrivatePostgres


class PrivateServer(Protocol):
    directory: Path
    """Its data, socket and log."""
    port: int
    """Its TCP port on 127.0.0.1."""

    @property
    def url(self) -> str:
        """A superuser on the database ``app``, as SQLAlchemy and Celery (after ``db+``)
        take it."""

    def install(self) -> None:
        """Create its data directory; skip the test (fail it under
        CELERY_SA_REQUIRE_SERVICES=1) when the server's programs are missing."""

    def start(self) -> None:
        """Start it and return once the database ``app`` exists (after a crash, once it
        has recovered); fail with its log's tail when it does not start."""

    def stop(self) -> None:
        """A clean shutdown, as a service restart does."""

    def kill(self) -> None:
        """SIGKILL, as a crash does; ``start()`` recovers."""


SERVERS: dict[str, Callable[[Path], PrivateServer]] = {
    "mysql": PrivateMariaDB,
    "postgresql": PrivatePostgres,
}
"""The private servers by kind, the name of the service (``tests.support.services``) on
whose machines the server's programs are installed."""


@contextmanager
def private_server(kind: str, directory: Path) -> Iterator[PrivateServer]:
    """A started private server of ``kind`` ("mysql" or "postgresql") in ``directory``;
    stopped and its data removed afterwards."""
    server = SERVERS[kind](directory)
    server.install()
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)  # MariaDB's data: ~100 MB
