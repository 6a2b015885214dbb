"""The private servers the failover tests stop, start and kill: what was committed survives
a crash and a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from tests.support.private_servers import SERVERS, PrivateServer, private_server

# A private server's programs are installed where its database is a service.
KINDS = [pytest.param(kind, marks=pytest.mark.services(kind)) for kind in SERVERS]


def commit_note(server: PrivateServer, note: str) -> None:
    engine = create_engine(server.url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS kept (note VARCHAR(40) NOT NULL)"))
        connection.execute(text("INSERT INTO kept (note) VALUES (:note)"), {"note": note})


def notes(server: PrivateServer) -> list[str]:
    engine = create_engine(server.url, poolclass=NullPool)
    with engine.connect() as connection:
        return list(connection.scalars(text("SELECT note FROM kept ORDER BY note")))


def answers(server: PrivateServer) -> bool:
    try:
        create_engine(server.url, poolclass=NullPool).connect().close()
    except OperationalError:
        return False
    return True


@pytest.mark.parametrize("kind", KINDS)
def test_a_killed_server_starts_again_with_its_committed_rows(kind: str, tmp_path: Path) -> None:
    with private_server(kind, tmp_path / kind) as server:
        commit_note(server, "before the crash")
        server.kill()
        assert not answers(server)
        server.start()
        assert notes(server) == ["before the crash"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_stopped_server_starts_again_with_its_committed_rows(kind: str, tmp_path: Path) -> None:
    with private_server(kind, tmp_path / kind) as server:
        commit_note(server, "before the stop")
        server.stop()
        assert not answers(server)
        server.start()
        assert notes(server) == ["before the stop"]


@pytest.mark.services("mysql")
def test_a_private_mariadb_leaves_the_machine_servers_temporary_tables_alone(
    tmp_path: Path,
) -> None:
    """A starting MariaDB deletes the ``#sql*`` files of its tmpdir: in /tmp, those of the
    machine's MariaDB, in use (a DESCRIBE beside a private server's start failed in CI)."""
    shared = Path("/tmp") / f"#sql-celery-sa-probe-{tmp_path.name}.MAI"
    shared.touch()
    try:
        with private_server("mysql", tmp_path / "mysql"):
            pass
        assert shared.exists()
    finally:
        shared.unlink(missing_ok=True)
