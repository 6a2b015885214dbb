"""A MariaDB server of a test's own (own data directory and port), to stop, start and kill at
will while the machine's service stays untouched."""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.support.server_process import (
    START_TIMEOUT,
    free_port,
    run_setup,
    unavailable,
    wait_until_answering,
)

BINARIES = ("mariadb-install-db", "mariadbd")


@dataclass
class PrivateMariaDB:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    options: tuple[str, ...] = ()
    """More server options (a replication pair's ``--server-id``, ``--log-bin``)."""

    @property
    def url(self) -> str:
        """Root on the database ``app``, as Celery and SQLAlchemy take it."""
        return f"mysql://root@127.0.0.1:{self.port}/app"

    @property
    def tmpdir(self) -> str:
        """``--tmpdir``: its own, not /tmp. A starting MariaDB deletes every ``#sql*`` file
        in its tmpdir, and in /tmp those are the machine's MariaDB's temporary tables in use
        (CI: "Error on delete of '/tmp/#sql-temptable-….MAI'" on a DESCRIBE beside a private
        server's start)."""
        directory = self.directory / "tmp"
        directory.mkdir(parents=True, exist_ok=True)
        return f"--tmpdir={directory}"

    def install(self) -> None:
        missing = [name for name in BINARIES if shutil.which(name) is None]
        if missing:
            unavailable(f"a private MariaDB needs {', '.join(missing)} (Debian: mariadb-server)")
        run_setup(
            [
                "mariadb-install-db",
                "--no-defaults",
                self.tmpdir,
                f"--datadir={self.directory / 'data'}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ]
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                self.tmpdir,
                f"--datadir={self.directory / 'data'}",
                "--user=root",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.directory / 'mariadb.sock'}",
                f"--pid-file={self.directory / 'mariadb.pid'}",
                f"--log-error={self.directory / 'error.log'}",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=128M",
                "--max-connections=200",
                *self.options,
            ]
        )
        wait_until_answering(
            self.process, self.create_app_database, self.directory / "error.log", "MariaDB"
        )

    def create_app_database(self) -> None:
        engine = create_engine(f"mysql://root@127.0.0.1:{self.port}", poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text("CREATE DATABASE IF NOT EXISTS app"))
        finally:
            engine.dispose()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), as a service restart does."""
        self.end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, as a crash does: ``start()`` then recovers from InnoDB's redo log."""
        self.end(signal.SIGKILL)

    def end(self, signal_number: signal.Signals) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal_number)
            self.process.wait(START_TIMEOUT)
        self.process = None
