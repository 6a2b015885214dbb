"""A PgBouncer of a test's own (Debian's ``pgbouncer``) in front of the machine's PostgreSQL, in
transaction pooling: what a fleet of workers outgrowing one server's connections puts between
them and the database."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.support.postgres import as_server_user, server_account
from tests.support.server_process import START_TIMEOUT, free_port, unavailable, wait_until_answering

PROGRAM = Path("/usr/sbin/pgbouncer")
LOG = "pgbouncer.log"


@dataclass
class PrivatePgBouncer:
    directory: Path
    upstream: str
    """The database it pools, as a SQLAlchemy URL (user ``postgres``, trust auth)."""
    pool_size: int = 4
    """Server connections per database and user (``default_pool_size``)."""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The upstream URL with PgBouncer's port instead of the server's."""
        return make_url(self.upstream).set(port=self.port).render_as_string(hide_password=False)

    def start(self) -> None:
        if not PROGRAM.exists():
            unavailable(
                f"{PROGRAM} is missing: `bash project/run test` installs Debian's pgbouncer"
            )
        server = make_url(self.upstream)
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "users.txt").write_text('"postgres" ""\n')
        (self.directory / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={server.host} port={server.port or 5432}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.directory / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\n"
            "max_client_conn = 500\n"
            "stats_users = postgres\n"
            # What psycopg and Django send at connect, which PgBouncer does not pool by.
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.directory / LOG}\n"
        )
        account = server_account()
        if account:
            for path in (self.directory, *self.directory.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
        self.process = subprocess.Popen(
            [*as_server_user(), str(PROGRAM), str(self.directory / "pgbouncer.ini")],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_until_answering(self.process, self.answer, self.directory / LOG, "PgBouncer")

    def answer(self) -> None:
        engine = create_engine(self.url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()

    def server_connections(self) -> int:
        """The connections PgBouncer holds to the server now (``SHOW SERVERS`` on its
        console, which answers its own commands only: no SQLAlchemy, which asks for the
        server's version first)."""
        console = make_url(self.url).set(drivername="postgresql", database="pgbouncer")
        conninfo = console.render_as_string(hide_password=False)
        with psycopg.connect(
            conninfo, autocommit=True, cursor_factory=psycopg.ClientCursor
        ) as connection:
            return len(connection.execute("SHOW SERVERS").fetchall())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(START_TIMEOUT)
        self.process = None


@contextmanager
def private_pgbouncer(
    directory: Path, upstream: str, pool_size: int = 4
) -> Iterator[PrivatePgBouncer]:
    """A started PgBouncer in transaction pooling in front of ``upstream``; stopped and its
    folder removed afterwards."""
    bouncer = PrivatePgBouncer(directory, upstream, pool_size)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(directory, ignore_errors=True)
