"""The chord counter's rows, and a header task's request, for the chord protocol's tests."""

from __future__ import annotations

from typing import Any

from celery.app.task import Context
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from celery_sa.conf import configured_tables
from celery_sa.db import result_database


def chord_rows() -> tuple[int, int]:
    """Rows in the chord counter's two tables."""
    tables = configured_tables()
    engine = create_engine(result_database().url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return tuple(  # type: ignore[return-value]
                connection.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (tables.chord, tables.part)
            )
    finally:
        engine.dispose()


def chord_request(group_id: str, index: int, body: Any) -> Context:
    """The request of the header task ``index`` of chord ``group_id``, as a worker has it."""
    return Context(id=f"{group_id}-{index}", group=group_id, group_index=index, chord=dict(body))
