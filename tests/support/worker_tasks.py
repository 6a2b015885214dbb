"""Tasks a test worker imports (CELERY_IMPORTS=tests.support.worker_tasks) to exercise SessionTask.

They write to ``session_rows`` on the "default" SessionTask database. A line per finished
execution goes to $CELERY_SA_TEST_DONE_FILE, whatever the outcome (Ignore and Reject store
no result a test could wait for).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from celery import shared_task
from celery.exceptions import Ignore, Reject
from celery.signals import task_postrun, worker_init
from sqlalchemy import Integer, String, UniqueConstraint, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from celery_sa.sessions import SessionTask, get_engine


class Base(DeclarativeBase):
    pass


class Entry(Base):
    """A row a reliability task commits; (key, part) unique so a rerun cannot add it twice."""

    __tablename__ = "reliability_rows"
    __table_args__ = (UniqueConstraint("key", "part"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100))
    part: Mapped[str] = mapped_column(String(10))


class Row(Base):
    __tablename__ = "session_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100))
    connection_id: Mapped[int] = mapped_column(Integer, default=0)


def connection_id(task: SessionTask) -> int:
    return int(task.session.execute(text("SELECT CONNECTION_ID()")).scalar_one())


@shared_task(bind=True, base=SessionTask, max_retries=1, default_retry_delay=0)
def record(self: SessionTask, key: str, outcome: str) -> str:
    """Insert a row for ``key``; only "success" (and "retry" on its second attempt) keep it."""
    self.session.add(Row(key=key))
    self.session.flush()
    if outcome == "failure":
        raise ValueError(f"{key} fails")
    if outcome == "retry" and self.request.retries == 0:
        raise self.retry()
    if outcome == "ignore":
        raise Ignore()
    if outcome == "reject":
        raise Reject(f"{key} rejected", requeue=False)
    self.session.commit()
    return key


@shared_task(bind=True, base=SessionTask)
def hold(self: SessionTask, key: str, seconds: float) -> int:
    """Keep a session busy for ``seconds``, then commit a row naming its connection."""
    self.session.add(Row(key=key, connection_id=connection_id(self)))
    time.sleep(seconds)
    self.session.commit()
    return connection_id(self)


class CommittingTask(SessionTask):
    commit_on_success = True


@shared_task(bind=True, base=CommittingTask)
def create_row(self: SessionTask, key: str) -> str:
    """Add a row and return; commit_on_success commits before the result is stored."""
    self.session.add(Row(key=key))
    return key


@shared_task(bind=True, base=SessionTask)
def count_rows(self: SessionTask, key: str) -> int:
    return int(self.session.query(Row).filter_by(key=key).count())


_probe_lock = threading.Lock()


@shared_task
def pool_status() -> dict[str, Any]:
    """This worker process's engine answers, and how many connections are checked out."""
    time.sleep(0.05)  # let every pool process pick up a probe
    with _probe_lock:  # on a threads pool, one probe's connection is not another's count
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        pool = get_engine().pool
        checked_out = pool.checkedout()  # type: ignore[attr-defined]
    return {"pid": os.getpid(), "checked_out": checked_out}


@worker_init.connect
def _connect_in_parent(**kwargs: Any) -> None:
    """With CELERY_SA_TEST_PARENT_FILE set, the worker's main process uses the engine
    before the pool forks, and writes down its connection id."""
    path = os.environ.get("CELERY_SA_TEST_PARENT_FILE")
    if path:
        with get_engine().connect() as connection:
            parent_id = connection.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        with open(path, "w") as file:
            file.write(str(parent_id))


_done_lock = threading.Lock()


@task_postrun.connect
def _note_done(task_id: str, state: str | None = None, **kwargs: Any) -> None:
    path = os.environ.get("CELERY_SA_TEST_DONE_FILE")
    if path:
        with _done_lock, open(path, "a") as file:
            file.write(f"{task_id} {state}\n")


@shared_task(bind=True, max_retries=1)
def retry_later(self: Any, seconds: float) -> str:
    """Ask to be retried in ``seconds``: the row says RETRY until then (revoke it)."""
    if self.request.retries == 0:
        raise self.retry(countdown=seconds)
    return "retried"


@shared_task(
    bind=True,
    base=SessionTask,
    autoretry_for=(OperationalError,),
    retry_backoff=0.5,
    retry_backoff_max=4,
    retry_jitter=False,
    max_retries=40,
)
def store_once(self: SessionTask, key: str, hold: float = 0.0) -> str:
    """Commit ``key``'s row once, however often the task runs: the idempotent write
    docs/guides/production.md recommends. While the database is away, OperationalError
    retries it. ``hold``: seconds between writing the row and committing it."""
    self.session.add(Entry(key=key, part="row"))
    try:
        if hold:
            self.session.flush()  # refused here already if an earlier run committed it
            time.sleep(hold)
        self.session.commit()
    except IntegrityError:  # an earlier run committed it, then lost its result or ack
        self.session.rollback()
        return "already"
    return "stored"


@shared_task(bind=True, base=SessionTask)
def two_parts(self: SessionTask, key: str, marker_dir: str) -> str:
    """Write part a, then part b, in one transaction. The first run of a key writes its pid
    and connection id to marker_dir/key and waits to be killed before part b."""
    self.session.add(Entry(key=key, part="a"))
    self.session.flush()
    marker = os.path.join(marker_dir, key)
    if not os.path.exists(marker):
        with open(marker + ".tmp", "w") as file:
            file.write(f"{os.getpid()} {connection_id(self)}")
        os.rename(marker + ".tmp", marker)
        time.sleep(60)
    self.session.add(Entry(key=key, part="b"))
    self.session.commit()
    return key
