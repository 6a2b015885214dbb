"""``manage.py demo``: set up, start a worker and the server, enqueue demo tasks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from celery import chord, group
from celery.result import AsyncResult
from celery.states import READY_STATES
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.checks import ERROR, CheckMessage, run_checks
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from celery_sa.errors import one_line
from celery_sa.models import TaskResult
from celery_sa.sessions import get_engine, session_scope
from project.books import Base, Book
from project.tasks import add, divide, flaky, rename_book, total

DEMO_USER = ("admin", "admin")
STOP_TIMEOUT = 15.0


class Command(BaseCommand):
    help = (
        "Run the demo: migrate, create the result tables, start a Celery worker and the "
        "development server, and enqueue demo tasks whose results show up in /admin/."
    )
    requires_system_checks: list[str] = []  # preflight() runs them, one line per problem.

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--addrport", default="127.0.0.1:8000", help="Where the development server listens."
        )
        parser.add_argument(
            "--no-server",
            action="store_true",
            help="Do not start the server: wait for the demo tasks' results, then stop.",
        )
        parser.add_argument(
            "--timeout", type=float, default=60.0, help="Seconds to wait for the demo results."
        )

    def handle(self, *args: Any, addrport: str, no_server: bool, timeout: float, **opts: Any):  # type: ignore[no-untyped-def]
        self.preflight()
        try:
            call_command("migrate", interactive=False, verbosity=0)
        except DatabaseError as exc:
            raise CommandError(f"Cannot migrate the DATABASE_URL database: {exc}") from exc
        call_command("celery_sa_tables", "create", stdout=self.stdout)
        self.demo_superuser()
        book_id = self.seed_book()
        # A process manager, a container stop or `timeout` sends SIGTERM (a closed terminal
        # SIGHUP): stop the worker and the server as Ctrl-C does, not leave them running.
        # SIGINT too: a shell starts a background job with SIGINT ignored, and Python keeps
        # it ignored, yet Ctrl-C (or kill -INT) must still stop the demo.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _interrupt)
        children = [
            self.spawn(
                "worker",
                [
                    "-m",
                    "celery",
                    "-A",
                    "project",
                    "worker",
                    "-l",
                    "INFO",
                    "-c",
                    "2",
                    "--without-gossip",
                    "--without-mingle",
                ],
            )
        ]
        try:
            if not no_server:
                children.append(
                    self.spawn("server", ["manage.py", "runserver", "--noreload", addrport])
                )
            task_ids, summed = self.enqueue(book_id)
            self.report(self.wait_for(task_ids, timeout, children))
            self.report_chord(summed)
            self.report_runtimes(task_ids)
            self.report_book(book_id)
            if not no_server:
                self.stdout.write(
                    self.style.SUCCESS(f"Open http://{addrport}/admin/ — Ctrl-C stops the demo.")
                )
                self.serve(children)
        except KeyboardInterrupt:
            self.stdout.write("Stopping the worker and the server…")
        finally:
            self.stop(children)

    def preflight(self) -> None:
        # Settings first: the database checks would import drivers that may be missing.
        # celery_sa's database check probes the result database whichever alias is named.
        self.fail_on_errors(run_checks())
        try:
            self.fail_on_errors(run_checks(databases=["default"]))
        except DatabaseError as exc:
            raise CommandError(f"Cannot connect to the DATABASE_URL database: {exc}") from exc

    def fail_on_errors(self, messages: list[CheckMessage]) -> None:
        errors = [m for m in messages if m.level >= ERROR]
        if errors:
            raise CommandError("\n".join(f"{e.id}: {e.msg} HINT: {e.hint}" for e in errors))

    def demo_superuser(self) -> None:
        if not settings.EMBEDDED_DEFAULT:
            return
        username, password = DEMO_USER
        user, _ = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        user.set_password(password)
        user.save()
        self.stdout.write(f"Admin login: user {username!r}, password {password!r}")

    def spawn(self, label: str, argv: list[str]) -> subprocess.Popen[bytes]:
        self.stdout.write(f"Starting the {label}: {' '.join(argv)}")
        # A session of its own: Ctrl-C reaches only this command, which stops it cleanly.
        return subprocess.Popen(
            [sys.executable, *argv], cwd=settings.BASE_DIR, start_new_session=True
        )

    def seed_book(self) -> int:
        """The SessionTask example's data: a books table on CELERY_SA_DATABASE_URL."""
        try:
            Base.metadata.create_all(get_engine())
            with session_scope(commit=True) as session:
                book = session.scalars(select(Book).order_by(Book.id)).first()
                if book is None:
                    book = Book(title="Dune", author="Frank Herbert")
                    session.add(book)
                    session.flush()
                return book.id
        except SQLAlchemyError as exc:
            raise CommandError(f"Cannot use CELERY_SA_DATABASE_URL: {one_line(exc)}") from exc

    def report_book(self, book_id: int) -> None:
        with session_scope() as session:
            book = session.get(Book, book_id)
            self.stdout.write(f"Book {book_id} (SessionTask example) is now called {book.title!r}.")

    def enqueue(self, book_id: int) -> tuple[list[str], AsyncResult[Any]]:
        title = f"Dune ({time.strftime('%H:%M:%S')})"
        results = [add.delay(2, 3), add.delay(40, 2), divide.delay(1, 0), flaky.delay(2)]
        results.append(rename_book.delay(book_id, title))
        members = group(add.s(i, i) for i in range(3)).apply_async()
        members.save()
        # With celery_sa's backend the chord is counted in its own table: its callback is
        # sent once, by the header task that returns last (Celery's db+ backend polls with
        # celery.chord_unlock instead).
        summed = chord(add.s(i, 10 * i) for i in range(3))(total.s())
        ids = [r.id for r in [*results, *members.results, summed, *summed.parent.results]]
        self.stdout.write(
            f"Enqueued {len(ids)} demo tasks (group {members.id}, chord {summed.parent.id})."
        )
        return ids, summed

    def wait_for(
        self, task_ids: list[str], timeout: float, children: list[subprocess.Popen[bytes]]
    ) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while True:
            rows = TaskResult.objects.filter(task_id__in=task_ids, status__in=READY_STATES)
            done = dict(rows.values_list("task_id", "status"))
            if len(done) == len(task_ids):
                break
            if any(child.poll() is not None for child in children):
                raise CommandError("The worker or the server stopped; see its output above.")
            if time.monotonic() > deadline:
                raise CommandError(
                    f"Only {len(done)} of {len(task_ids)} demo tasks finished in {timeout:g} s; "
                    f"is the broker ({settings.CELERY_BROKER_URL}) reachable?"
                )
            time.sleep(0.3)
        counts: dict[str, int] = {}
        for status in done.values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    def report(self, counts: dict[str, int]) -> None:
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        self.stdout.write(f"Demo tasks finished: {summary}.")

    def report_chord(self, summed: AsyncResult[Any]) -> None:
        header = len(summed.parent.results)
        self.stdout.write(
            f"Chord: the callback {total.name} summed its {header} header tasks' results: "
            f"{summed.result!r} ({summed.state})."
        )

    def report_runtimes(self, task_ids: list[str]) -> None:
        """Each demo task's runtime, where the result backend records its start."""
        took = [
            (result.name or "?", result.date_done - result.started)
            for result in TaskResult.objects.filter(task_id__in=task_ids).order_by("name")
            if result.started is not None and result.date_done is not None
        ]
        if not took:
            self.stdout.write("Runtimes: not recorded by this result backend (celery_sa+… does).")
            return
        slowest = max(took, key=lambda entry: entry[1])
        self.stdout.write(
            f"Runtimes recorded for {len(took)} of {len(task_ids)} demo tasks; the longest: "
            f"{slowest[0]} ({slowest[1].total_seconds() * 1000:.0f} ms)."
        )

    def serve(self, children: list[subprocess.Popen[bytes]]) -> None:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)

    def stop(self, children: list[subprocess.Popen[bytes]]) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()  # the worker shuts down warm and stops its pool
        for child in children:
            try:
                child.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        self.stdout.write("Demo stopped.")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)
