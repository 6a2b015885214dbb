"""A MariaDB server of a test's own (own data directory and port), to stop and start at will
while the machine's service stays untouched."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from tests.support.services import REQUIRE_SERVICES

BINARIES = ("mariadb-install-db", "mariadbd")
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PrivateMariaDB:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Root on the database ``app``, as Celery and SQLAlchemy take it."""
        return f"mysql://root@127.0.0.1:{self.port}/app"

    def install(self) -> None:
        missing = [name for name in BINARIES if shutil.which(name) is None]
        if missing:
            message = f"a private MariaDB needs {', '.join(missing)} (Debian: mariadb-server)"
            if REQUIRE_SERVICES:
                pytest.fail(message)
            pytest.skip(message)
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.directory / 'data'}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
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
            ]
        )
        deadline = time.monotonic() + START_TIMEOUT
        engine = create_engine(f"mysql://root@127.0.0.1:{self.port}", poolclass=NullPool)
        while True:
            try:
                with engine.connect() as connection:
                    connection.execute(text("CREATE DATABASE IF NOT EXISTS app"))
                break
            except OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "error.log").read_text(errors="replace")
                    pytest.fail(f"the private MariaDB did not start:\n{log[-3000:]}")
                time.sleep(0.2)
        engine.dispose()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), as a service restart does."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(START_TIMEOUT)
        self.process = None
