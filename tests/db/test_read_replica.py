"""Reading from a real replica (CELERY_SA_READ_REPLICA): a MariaDB primary with a binlog
replica, a PostgreSQL primary with a streaming standby (pg_basebackup), all private servers
the test starts. The pages that only read follow the replica, its lag and a stopped
replication show, and a replica that is down leaves the pages on the primary, with a
message instead of an error."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin import helpers
from django.core.management import call_command
from django.db import connections
from django.test import Client, override_settings
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from celery_sa.db import result_alias
from celery_sa.db.replica import REPLICA_ALIAS, replica_reads
from celery_sa.models import TaskResult
from tests.support.mariadb import PrivateMariaDB
from tests.support.monitoring import REAL_REPLICA_ONLY, exported_names
from tests.support.postgres import PrivatePostgres
from tests.support.rows import insert_rows, row

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
LIST = "/admin/celery_sa/taskresult/"
OVERVIEW = "/admin/celery_sa/overview/?window=30d"
METRICS = "/metrics/celery/"


@dataclass
class Replication:
    primary: str
    replica: str
    """SQLAlchemy URLs of the two servers' database ``app``."""
    stop_replicating: Callable[[], None]
    stop_replica: Callable[[], None]


def execute(url: str, sql: str) -> list[Any]:
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            result = connection.execute(text(sql))
            return list(result.mappings()) if result.returns_rows else []
    finally:
        engine.dispose()


def mariadb_pair(directory: Path) -> Iterator[Replication]:
    primary = PrivateMariaDB(
        directory / "primary", options=("--server-id=1", "--log-bin=binlog", "--binlog-format=ROW")
    )
    replica = PrivateMariaDB(directory / "replica", options=("--server-id=2",))
    for server in (primary, replica):
        server.install()
        server.start()
    try:
        [position] = execute(primary.url, "SHOW MASTER STATUS")
        execute(
            replica.url,
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, "
            f"MASTER_USER='root', MASTER_PASSWORD='', MASTER_LOG_FILE='{position['File']}', "
            f"MASTER_LOG_POS={position['Position']}",
        )
        execute(replica.url, "START SLAVE")
        yield Replication(
            primary.url,
            replica.url,
            stop_replicating=lambda: execute(replica.url, "STOP SLAVE") and None,
            stop_replica=replica.stop,
        )
    finally:
        replica.stop()
        primary.stop()


def postgres_pair(directory: Path) -> Iterator[Replication]:
    primary = PrivatePostgres(directory / "primary")
    primary.install()
    primary.start()
    standby = PrivatePostgres(directory / "standby")
    try:
        standby.install_standby_of(primary)
        standby.start()
        yield Replication(
            primary.url,
            standby.url,
            stop_replicating=lambda: execute(standby.url, "SELECT pg_wal_replay_pause()") and None,
            stop_replica=standby.stop,
        )
    finally:
        standby.stop()
        primary.stop()


PAIRS = {"mysql": mariadb_pair, "postgresql": postgres_pair}


@pytest.fixture(params=[pytest.param(kind, marks=pytest.mark.services(kind)) for kind in PAIRS])
def replication(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Replication]:
    """A primary and its replica, the primary as the result database and the replica as
    CELERY_SA_READ_REPLICA (a URL), the tables made and one result stored and replicated."""
    placeholder = connections.settings[REPLICA_ALIAS]
    for pair in PAIRS[request.param](tmp_path):
        backend = "db+" + pair.primary
        with override_settings(CELERY_RESULT_BACKEND=backend, CELERY_SA_READ_REPLICA=pair.replica):
            call_command("celery_sa_tables", "create", stdout=io.StringIO())
            insert_rows(row("both", date_done=None))
            replicated(pair, "both")
            until_replicating()
            try:
                yield pair
            finally:
                for alias in (result_alias(), REPLICA_ALIAS):
                    connections[alias].close()
                connections.settings[REPLICA_ALIAS] = placeholder
                del connections[REPLICA_ALIAS]


def replicated(pair: Replication, task_id: str) -> None:
    deadline = time.monotonic() + 30
    query = f"SELECT 1 FROM celery_taskmeta WHERE task_id = '{task_id}'"
    while not execute(pair.replica, query):
        assert time.monotonic() < deadline, f"{task_id} never reached the replica"
        time.sleep(0.1)


def until_replicating() -> None:
    """Until the replica says it replays the primary (a standby just started may still be
    connecting to it)."""
    deadline = time.monotonic() + 30
    while True:
        with replica_reads() as reads:
            state = reads.replication() if reads is not None else None
        if state is not None and state.running:
            return
        assert time.monotonic() < deadline, f"the replica never said it replicates: {state}"
        time.sleep(0.2)


def listed(admin_client: Client) -> list[str]:
    response = admin_client.get(LIST)
    assert response.status_code == 200
    return [task.task_id for task in response.context["cl"].result_list]


def metric(admin_client: Client, name: str) -> float | None:
    lines = admin_client.get(METRICS).text.splitlines()
    found = [line.split()[1] for line in lines if line.startswith(f"{name} ")]
    return float(found[0]) if found else None


def test_the_pages_read_the_replica_show_its_lag_and_survive_it_going_down(
    replication: Replication, admin_client: Client
) -> None:
    assert listed(admin_client) == ["both"]
    overview = admin_client.get(OVERVIEW).text
    lag = re.search(r"Read from the replica celery_sa_replica, (\d+) s behind the result", overview)
    assert lag is not None and int(lag[1]) < 30, overview[overview.find("celery-sa-replica") :][
        :300
    ]
    assert metric(admin_client, "celery_sa_replica_up") == 1
    assert metric(admin_client, "celery_sa_replica_replicating") == 1
    # What the dashboard and the alert rules read that only a real replica exports.
    assert REAL_REPLICA_ONLY <= exported_names(admin_client.get(METRICS).text)

    # Replication stops: what the primary stores now is not on the replica.
    replication.stop_replicating()
    insert_rows(row("primary-only", date_done=None))
    time.sleep(1.5)
    assert TaskResult.objects.filter(task_id="primary-only").exists()  # the primary
    with replica_reads():
        assert not TaskResult.objects.filter(task_id="primary-only").exists()
    assert listed(admin_client) == ["both"]
    overview = admin_client.get(OVERVIEW).text
    assert 'id="celery-sa-replica"' in overview
    assert "whose replication is stopped" in overview
    assert metric(admin_client, "celery_sa_replica_replicating") == 0
    stats = io.StringIO()
    call_command("celery_sa_stats", stdout=io.StringIO(), stderr=stats)
    assert "whose replication is stopped" in stats.getvalue()
    # What acts reads the primary: an action (a POST) and the purge.
    pk = TaskResult.objects.get(task_id="primary-only").pk
    export = admin_client.post(
        LIST, {"action": "export_csv", helpers.ACTION_CHECKBOX_NAME: [str(pk)]}
    )
    assert b"primary-only" in b"".join(export.streaming_content)  # type: ignore[attr-defined]
    purge = io.StringIO()
    call_command("celery_sa_purge", "--older-than", "1s", "--undated", "--dry-run", stdout=purge)
    assert "Would delete 2 task results without a date_done." in purge.getvalue()

    # The replica goes down: the pages read the primary and say so.
    replication.stop_replica()
    connections[REPLICA_ALIAS].close()
    response = admin_client.get(LIST)
    assert response.status_code == 200
    assert sorted(task.task_id for task in response.context["cl"].result_list) == [
        "both",
        "primary-only",
    ]
    assert "The read replica (celery_sa_replica) does not answer" in response.text
    overview_response = admin_client.get(OVERVIEW)
    assert overview_response.status_code == 200
    assert "does not answer" in overview_response.text
    assert metric(admin_client, "celery_sa_replica_up") == 0
    checked = io.StringIO()
    call_command("check", "--database", "default", stdout=checked, stderr=checked)
    assert "celery_sa.W004" in checked.getvalue()
