"""The three ways of giving a task a session that bench/session_task.py compares.

Each task runs the same statement; only the session handling differs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from celery import Task, shared_task
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from celery_sa.sessions import SessionTask, get_engine

QUERY = select(text("1"))


@shared_task(ignore_result=True)
def boilerplate() -> None:
    """Hand-written: the reference."""
    with Session(get_engine()) as session:
        session.execute(QUERY)


@shared_task(bind=True, base=SessionTask, ignore_result=True)
def session_task(self: SessionTask) -> None:
    self.session.execute(QUERY)


class SeedTask(Task):  # type: ignore[misc]
    """The seed document's pattern: sessions keyed by task id, closed in after_return."""

    sessions: ClassVar[dict[str, Session]] = {}

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        self.sessions[task_id] = Session(get_engine())

    def after_return(self, status: Any, retval: Any, task_id: str, *args: Any) -> None:
        self.sessions.pop(task_id).close()

    @property
    def session(self) -> Session:
        return self.sessions[self.request.id]


@shared_task(bind=True, base=SeedTask, ignore_result=True)
def seed_pattern(self: SeedTask) -> None:
    self.session.execute(QUERY)


@shared_task
def sentinel() -> str:
    """Stored, so the benchmark sees when a solo worker has worked through its queue."""
    return "done"
