"""A PostgreSQL server of a test's own (own data directory and port), to stop, start and kill
at will while the machine's service stays untouched."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
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

LOG = "postgres.log"
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "200",
    "shared_buffers": "64MB",
    # fsync and synchronous_commit keep their defaults: a kill is to be a crash with a real
    # recovery, and a committed row is to survive it.
}
SERVER_USER = "postgres"


def programs() -> Path:
    """The folder of initdb and postgres: the newest version's where Debian keeps each
    major version apart, else the one on PATH."""
    versions = [
        folder
        for folder in Path("/usr/lib/postgresql").glob("*/bin")
        if folder.parent.name.replace(".", "", 1).isdigit()
        and (folder / "initdb").exists()
        and (folder / "postgres").exists()
    ]
    if versions:
        return max(versions, key=lambda folder: float(folder.parent.name))
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).parent / "postgres").exists():
        return Path(initdb).parent
    unavailable("a private PostgreSQL needs initdb and postgres (Debian: postgresql)")


def server_account() -> pwd.struct_passwd | None:
    """The account the server runs as under root, which PostgreSQL refuses to run as (None
    otherwise: it runs as the current user)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        unavailable(f"a private PostgreSQL under root needs a user {SERVER_USER!r} to run as")


def as_server_user() -> list[str]:
    """The prefix that runs a program as SERVER_USER under root (nothing otherwise).

    pytest keeps its temporary folders 0700 for root (and makes its root folder so again at
    each session's start), so rather than opening them to every user the server may search
    folders whatever their mode: CAP_DAC_READ_SEARCH, its only capability.
    """
    if server_account() is None:
        return []
    if shutil.which("setpriv") is None:
        unavailable("a private PostgreSQL under root needs setpriv (Debian: util-linux)")
    return [
        "setpriv",
        f"--reuid={SERVER_USER}",
        f"--regid={SERVER_USER}",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
        "--",
    ]


def processes() -> Iterator[tuple[int, str, int]]:
    """The id, state and parent of each process, from /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # After the command (in parentheses): the state, the parent.
            state, parent = stat.read_text().rpartition(")")[2].split()[:2]
        except OSError:
            continue  # it exited meanwhile
        yield int(stat.parent.name), state, int(parent)


@dataclass
class PrivatePostgres:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The superuser on the database ``app``, as Celery (after ``db+``) and SQLAlchemy
        take it, through psycopg 3 like the rest of the tests."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/app"

    def install(self) -> None:
        initdb = programs() / "initdb"
        self.directory.mkdir(parents=True, exist_ok=True)
        account = server_account()
        if account:
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        run_setup(
            [
                *as_server_user(),
                str(initdb),
                f"--pgdata={self.directory / 'data'}",
                "--username=postgres",
                "--auth=trust",
                "--no-locale",
                "--encoding=UTF8",
            ],
            cwd=self.directory,
        )

    def install_standby_of(self, primary: PrivatePostgres) -> None:
        """Make the data directory a streaming standby of ``primary`` (``pg_basebackup -R``:
        a copy of its data, and how to follow it)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        account = server_account()
        if account:
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        run_setup(
            [
                *as_server_user(),
                str(programs() / "pg_basebackup"),
                f"--pgdata={self.directory / 'data'}",
                "--host=127.0.0.1",
                f"--port={primary.port}",
                "--username=postgres",
                "--write-recovery-conf",
                "--checkpoint=fast",
            ],
            cwd=self.directory,
        )

    def start(self) -> None:
        settings = [f"--{name}={value}" for name, value in SETTINGS.items()]
        with (self.directory / LOG).open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *as_server_user(),
                    str(programs() / "postgres"),
                    "-D",
                    str(self.directory / "data"),
                    f"--port={self.port}",
                    f"--unix_socket_directories={self.directory}",
                    *settings,
                ],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_answering(
            self.process, self.create_app_database, self.directory / LOG, "PostgreSQL"
        )

    def create_app_database(self) -> None:
        engine = create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
        )
        try:
            with engine.connect() as connection:
                exists = text("SELECT 1 FROM pg_database WHERE datname = 'app'")
                # A standby has it from its primary (and could not create it).
                if connection.scalar(exists) is None:
                    connection.execute(text("CREATE DATABASE app"))
        finally:
            engine.dispose()

    def stop(self) -> None:
        """A fast shutdown (SIGINT: sessions ended, a checkpoint written), as a restart
        does."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(START_TIMEOUT)
        self.process = None

    def kill(self) -> None:
        """SIGKILL to the postmaster and its backends at once, as a crash does: ``start()``
        then recovers from the write-ahead log."""
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        postmaster = self.process.pid
        # Each backend is a session of its own (PostgreSQL setsid()s them): no process group
        # holds them all. Held still, the postmaster starts no backend while they are listed.
        os.kill(postmaster, signal.SIGSTOP)
        backends = [pid for pid, _, parent in processes() if parent == postmaster]
        for pid in [postmaster, *backends]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(START_TIMEOUT)
        self.process = None
        # A new postmaster refuses to start while a backend still holds the old shared
        # memory (a zombie, init's now, holds none).
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and any(
            pid in backends and state != "Z" for pid, state, _ in processes()
        ):
            time.sleep(0.05)
