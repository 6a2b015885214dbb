"""SQLAlchemy sessions on celery_sa's engines, for code outside tasks (views, commands)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from celery_sa.sessions.engines import DEFAULT_DATABASE, get_engine


@contextmanager
def session_scope(database: str = DEFAULT_DATABASE, *, commit: bool = False) -> Iterator[Session]:
    """A fresh ``Session`` on ``database``'s engine: rolled back if the block raises,
    committed at the end when ``commit=True``, always closed.

    ::

        with session_scope() as session:
            session.add(Book(title="Dune"))
            session.commit()
    """
    with Session(get_engine(database)) as session:
        try:
            yield session
            if commit:
                session.commit()
        except BaseException:
            session.rollback()
            raise
