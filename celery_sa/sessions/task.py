"""``SessionTask``: a Celery base task whose ``self.session`` is a fresh SQLAlchemy session.

::

    @app.task(bind=True, base=SessionTask)
    def rename_book(self, book_id, title):
        book = self.session.get(Book, book_id)
        book.title = title
        self.session.commit()
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, ClassVar

from celery import Task
from sqlalchemy.orm import Session

from celery_sa.sessions.engines import DEFAULT_DATABASE
from celery_sa.sessions.scope import session_scope

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

    When the database goes away (a restart, a failover), an execution that uses it fails
    with the driver's error as :class:`sqlalchemy.exc.OperationalError`: at once when the
    server refuses connections; when it hangs (a frozen primary), after the driver's
    timeouts, which by default let MySQL's drivers wait for ever (set them in the URL:
    ``?connect_timeout=10&read_timeout=60``). Its transaction is lost and its connection
    returned. The first execution after the database is back works, in the same
    worker: the engine pings a pooled connection before lending it (``pool_pre_ping``, see
    :mod:`celery_sa.sessions.engines`), and SQLAlchemy drops the whole pool once it finds a
    connection dead. To ride out the outage, let Celery retry the task, if running it twice
    does no harm (a commit whose answer was lost may have happened)::

        from sqlalchemy.exc import OperationalError

        @app.task(bind=True, base=SessionTask, autoretry_for=(OperationalError,),
                  retry_backoff=True, retry_backoff_max=60, max_retries=10)
        def rename_book(self, book_id, title): ...
    """

    #: The celery_sa database the session is bound to (see :mod:`celery_sa.sessions.engines`).
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
