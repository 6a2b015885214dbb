"""What celery_sa adds to the engine options of its engines, by database and driver."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from celery_sa.sql.vendors import engine_options


def test_psycopg_prepares_no_statement_on_the_server_unless_told_to() -> None:
    url = make_url("postgresql+psycopg://u@db/app")
    assert engine_options(url, {"pool_size": 3}) == {
        "pool_size": 3,
        "connect_args": {"prepare_threshold": None},
    }
    mine = {"connect_args": {"prepare_threshold": 5, "connect_timeout": 3}}
    assert engine_options(url, mine) == mine


def test_other_drivers_and_databases_keep_their_options_as_given() -> None:
    for url in ("postgresql+psycopg2://u@db/app", "mysql+mysqldb://u@db/app", "oracle://u@db"):
        assert engine_options(make_url(url), {"echo": True}) == {"echo": True}
