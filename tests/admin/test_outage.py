"""The admin, the overview and the metrics through a result database outage, on a private
MariaDB stopped and started: 503 and the reason while it is down, the pages again as soon
as it is back."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import Client, override_settings
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from celery_sa.db import result_alias
from celery_sa.models import TaskResult
from tests.support.databases import ResultDB, result_db_param
from tests.support.mariadb import PrivateMariaDB
from tests.support.rows import insert_rows, row

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
PASSWORD = "Pa55-w0rd-of-results"
NOT_ANSWERING = "The result database is not answering: "
# A server that is down refuses connections: the page says so at once, not after a timeout.
REFUSED_WITHIN = 5.0
PAGES = [
    "/admin/celery_sa/taskresult/",
    "/admin/celery_sa/groupresult/",
    "/admin/celery_sa/overview/",
]
METRICS = "/metrics/celery/"


@pytest.fixture
def results_on(private_mariadb: PrivateMariaDB) -> Iterator[PrivateMariaDB]:
    """The server as the result database, for a user with a password, one result in it."""
    engine = create_engine(private_mariadb.url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE USER 'results'@'%' IDENTIFIED BY '{PASSWORD}'"))
        connection.execute(text("GRANT ALL ON app.* TO 'results'@'%'"))
    engine.dispose()
    url = f"db+mysql://results:{PASSWORD}@127.0.0.1:{private_mariadb.port}/app"
    with override_settings(CELERY_RESULT_BACKEND=url):
        call_command("celery_sa_tables", "create", stdout=io.StringIO())
        insert_rows(row("one"))
        yield private_mariadb
        connections[result_alias()].close()


@pytest.mark.services("mysql")
def test_pages_answer_503_while_the_database_is_down_and_work_once_it_is_back(
    results_on: PrivateMariaDB, admin_client: Client
) -> None:
    pk = TaskResult.objects.get(task_id="one").pk
    pages = [*PAGES, f"/admin/celery_sa/taskresult/{pk}/change/"]
    everything = [*pages, METRICS]
    assert [admin_client.get(url).status_code for url in everything] == [200] * len(everything)

    # The first request finds the connection the earlier ones left open lost, the others
    # are refused a new one.
    results_on.stop()
    for url in pages:
        started = time.monotonic()
        response = admin_client.get(url)
        assert time.monotonic() - started < REFUSED_WITHIN
        assert response.status_code == 503
        assert "admin/celery_sa/unavailable.html" in [t.name for t in response.templates]
        page = response.text
        assert f'<p class="errornote">{NOT_ANSWERING}' in page
        assert PASSWORD not in page
    scrape = admin_client.get(METRICS)
    assert scrape.status_code == 503
    assert scrape["Content-Type"].startswith("text/plain")
    assert scrape.text.startswith(NOT_ANSWERING)
    assert scrape.text.count("\n") == 1
    assert PASSWORD not in scrape.text

    results_on.start()
    assert [admin_client.get(url).status_code for url in everything] == [200] * len(everything)


@pytest.mark.parametrize("result_db", [result_db_param("mysqlclient")], indirect=True)
def test_an_error_the_database_answered_is_still_the_tables_and_keeps_the_connection(
    result_db: ResultDB, admin_client: Client
) -> None:
    # MySQL's unknown column is an OperationalError, as a lost connection is.
    insert_rows(row("one"))
    with connections[result_db.alias].cursor() as cursor:
        cursor.execute("ALTER TABLE celery_taskmeta DROP COLUMN worker")
    response = admin_client.get("/admin/celery_sa/taskresult/", follow=True)
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith("Cannot read the Celery result table celery_taskmeta ((1054, ")
    assert connections[result_db.alias].connection is not None
