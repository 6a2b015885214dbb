"""SessionTask in-process: eager, apply(), direct calls, threads, greenlets, every outcome."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import greenlet
import pytest
from celery import Celery
from celery.exceptions import Ignore, Reject, SoftTimeLimitExceeded
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test import override_settings
from sqlalchemy import select
from sqlalchemy.orm import Session

from celery_sa.sessions import SessionTask, get_engine, session_scope
from project.books import Base as BooksBase
from project.books import Book
from project.tasks import rename_book
from tests.support.worker_tasks import Base, Row

app = Celery("session-task-tests", set_as_current=False)


@app.task(bind=True, base=SessionTask)
def add_row(self: SessionTask, key: str, outcome: str = "commit") -> str:
    self.session.add(Row(key=key))
    self.session.flush()
    if outcome == "raise":
        raise ValueError(key)
    if outcome == "ignore":
        raise Ignore()
    if outcome == "reject":
        raise Reject(key, requeue=False)
    if outcome == "soft-time-limit":
        raise SoftTimeLimitExceeded()
    if outcome == "retry" and self.request.retries == 0:
        raise self.retry(countdown=0, max_retries=1)
    if outcome != "no-commit":
        self.session.commit()
    return key


class CommittingTask(SessionTask):
    commit_on_success = True


@app.task(bind=True, base=CommittingTask)
def add_row_and_return(self: SessionTask, key: str) -> str:
    self.session.add(Row(key=key))
    return key


@app.task(bind=True, base=SessionTask)
def session_identity(self: SessionTask, wait: threading.Barrier | None = None) -> int:
    before = id(self.session)
    if wait is not None:
        wait.wait(timeout=10)
    assert id(self.session) == before, "another execution's session leaked in"
    return before


@app.task(bind=True, base=SessionTask)
def nested(self: SessionTask) -> tuple[int, int, int]:
    outer = id(self.session)
    inner = session_identity()
    return outer, inner, id(self.session)


class OtherDatabaseTask(SessionTask):
    database = "other"


@app.task(bind=True, base=OtherDatabaseTask)
def other_database_url(self: SessionTask) -> str:
    return str(self.session.get_bind().url)


@pytest.fixture(autouse=True)
def books_database(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'rows.sqlite3'}"
    with override_settings(CELERY_SA_DATABASE_URL=url):
        Base.metadata.create_all(get_engine())
        yield url


def keys() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Row.key).order_by(Row.id)))


def checked_out() -> int:
    return int(get_engine().pool.checkedout())  # type: ignore[attr-defined]


@pytest.mark.parametrize("call", ["apply", "delay with task_always_eager", "direct call"])
def test_a_session_in_every_execution_mode(call: str) -> None:
    if call == "apply":
        assert add_row.apply(("a",)).get() == "a"
    elif call == "direct call":
        assert add_row("a") == "a"
    else:
        app.conf.task_always_eager = True
        try:
            assert add_row.delay("a").get() == "a"
        finally:
            app.conf.task_always_eager = False
    assert keys() == ["a"]
    assert checked_out() == 0


def test_self_session_outside_an_execution_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match=r"self.session exists only while the task runs"):
        _ = add_row.session


@pytest.mark.parametrize(
    ("outcome", "state"),
    [
        ("raise", "FAILURE"),
        ("ignore", "IGNORED"),
        ("reject", "REJECTED"),
        ("soft-time-limit", "FAILURE"),
        ("no-commit", "SUCCESS"),
    ],
)
def test_every_outcome_without_commit_leaves_nothing_and_closes(outcome: str, state: str) -> None:
    assert add_row.apply(("gone", outcome)).state == state
    assert keys() == []
    assert checked_out() == 0


def test_a_retry_rolls_back_the_first_attempt_and_keeps_the_second() -> None:
    result = add_row.apply(("once", "retry"))
    assert (result.state, result.get()) == ("SUCCESS", "once")
    assert keys() == ["once"]
    assert checked_out() == 0


def test_commit_on_success_commits_before_returning() -> None:
    assert add_row_and_return.apply(("kept",)).get() == "kept"
    assert keys() == ["kept"]


def test_executions_in_threads_never_share_a_session() -> None:
    barrier = threading.Barrier(4)
    seen: list[int] = []
    threads = [
        threading.Thread(target=lambda: seen.append(session_identity(barrier))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(set(seen)) == 4
    assert checked_out() == 0


def test_executions_in_greenlets_never_share_a_session() -> None:
    seen: dict[str, tuple[int, int]] = {}
    main = greenlet.getcurrent()

    @app.task(bind=True, base=SessionTask, name="tests.greenlet_identity")
    def greenlet_identity(self: SessionTask, name: str) -> None:
        before = id(self.session)
        main.switch()  # the other greenlet runs its execution meanwhile
        seen[name] = (before, id(self.session))

    first = greenlet.greenlet(lambda: greenlet_identity("first"))
    second = greenlet.greenlet(lambda: greenlet_identity("second"))
    first.switch()
    second.switch()
    first.switch()
    second.switch()
    assert seen["first"][0] == seen["first"][1]
    assert seen["second"][0] == seen["second"][1]
    assert seen["first"][0] != seen["second"][0]


def test_a_nested_call_gets_its_own_session_and_gives_the_outer_one_back() -> None:
    outer, inner, after = nested()
    assert inner != outer
    assert after == outer


def test_databases_by_name_url_or_django_alias(tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    with override_settings(CELERY_SA_DATABASES={"other": other}):
        assert other_database_url() == other
    with override_settings(CELERY_SA_DATABASES={"other": {"ALIAS": "default"}}):
        name = connections["default"].settings_dict["NAME"]
        assert other_database_url() == f"sqlite:///{name}"
    with (
        override_settings(CELERY_SA_DATABASES={}),
        pytest.raises(ImproperlyConfigured, match="No database 'other' for SessionTask"),
    ):
        other_database_url()


def test_engine_options_have_safe_defaults_and_can_be_overridden() -> None:
    pool: Any = get_engine().pool
    assert (pool._pre_ping, pool._recycle) == (True, 3600)
    with override_settings(CELERY_SA_ENGINE_OPTIONS={"pool_recycle": 600, "pool_size": 3}):
        pool = get_engine().pool
        assert (pool._pre_ping, pool._recycle, pool.size()) == (True, 600, 3)


def test_session_scope_rolls_back_and_closes_for_code_outside_tasks() -> None:
    with pytest.raises(ValueError), session_scope() as session:
        session.add(Row(key="view"))
        session.flush()
        raise ValueError("the view failed")
    with session_scope(commit=True) as session:
        assert isinstance(session, Session)
        session.add(Row(key="command"))
    assert keys() == ["command"]
    assert checked_out() == 0


def test_the_readme_example_of_testing_a_session_task(tmp_path: Path) -> None:
    with override_settings(CELERY_SA_DATABASE_URL=f"sqlite:///{tmp_path / 'test-books.sqlite3'}"):
        BooksBase.metadata.create_all(get_engine())
        with session_scope(commit=True) as session:
            session.add(Book(id=1, title="Dune", author="Frank Herbert"))
        assert rename_book.apply((1, "Dune Messiah")).get() == "'Dune' is now 'Dune Messiah'"
        with session_scope() as session:
            assert session.get(Book, 1).title == "Dune Messiah"  # type: ignore[union-attr]
