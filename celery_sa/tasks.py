"""``SessionTask``: a Celery base task whose ``self.session`` is a fresh SQLAlchemy session.

::

    @app.task(bind=True, base=SessionTask)
    def rename_book(self, book_id, title):
        book = self.session.get(Book, book_id)
        book.title = title
        self.session.commit()
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, ClassVar

from celery import Task, shared_task
from sqlalchemy.orm import Session

from celery_sa.engines import DEFAULT_DATABASE
from celery_sa.sessions import session_scope

# One value per thread and per greenlet: executions running at the same time, even of the
# same task id, never see each other's session.
_current_session: ContextVar[Session | None] = ContextVar("celery_sa_session", default=None)


class SessionTask(Task):  # type: ignore[misc]
    """A Celery task with a SQLAlchemy ``Session`` per execution.

    Each execution (in a worker under any pool, with ``apply()``/``task_always_eager``, or
    called directly) opens a new session on the engine of :attr:`database`, rolls it back
    if the task raises anything (``Retry``, ``Ignore`` and ``Reject`` included) and always
    closes it before Celery stores the result. Commit stays explicit unless
    :attr:`commit_on_success` is set.
    """

    #: The celery_sa database the session is bound to (see :mod:`celery_sa.engines`).
    database: ClassVar[str] = DEFAULT_DATABASE
    #: Commit when the task returns, before its result is stored: a task chained after
    #: this one always sees the rows.
    commit_on_success: ClassVar[bool] = False

    @property
    def session(self) -> Session:
        """The session of the running execution."""
        session = _current_session.get()
        if session is None:
            raise RuntimeError(
                f"{self.name}: self.session exists only while the task runs (in a worker, "
                "with apply() or called directly); outside a task use "
                "celery_sa.sessions.session_scope()."
            )
        return session

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with session_scope(self.database) as session:
            token = _current_session.set(session)
            try:
                result = super().__call__(*args, **kwargs)
                if self.commit_on_success:
                    session.commit()
                return result
            finally:
                _current_session.reset(token)


@shared_task(name="celery_sa.purge")  # type: ignore[untyped-decorator]
def purge_results(
    older_than: str | None = None,
    statuses: Sequence[str] | str = (),
    names: Sequence[str] | str = (),
    groups: bool = True,
    undated: bool = False,
    batch_size: int | None = None,
    jobs: int | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """``manage.py celery_sa_purge`` as a task, with the same options, for celery beat::

        CELERY_BEAT_SCHEDULE = {
            # This key replaces Celery's own unbatched backend_cleanup.
            "celery.backend_cleanup": {
                "task": "celery_sa.purge",
                "schedule": crontab(hour=4, minute=0),
                "kwargs": {"older_than": "7d"},
            },
        }

    Returns what was deleted (or, with ``dry_run``, would be), as a dict.
    """
    # Imported here: this module is imported by task modules before Django's models load.
    from celery_sa.purge import DEFAULT_BATCH_SIZE, DEFAULT_JOBS, PurgeOptions, count, purge

    options = PurgeOptions.parse(
        older_than,
        statuses,
        names,
        groups,
        undated,
        batch_size or DEFAULT_BATCH_SIZE,
        jobs or DEFAULT_JOBS,
    )
    return (count(options) if dry_run else purge(options)).as_dict()
