"""Demo tasks: a success, a failure with a traceback, a retry, a group member and a
chord's callback."""

from __future__ import annotations

from celery import shared_task

from celery_sa.sessions import SessionTask
from project.books import Book


@shared_task
def add(x: int, y: int) -> int:
    """Add two numbers."""
    return x + y


@shared_task
def total(numbers: list[int]) -> int:
    """A chord's callback: the sum of its header's results."""
    return sum(numbers)


@shared_task
def divide(x: float, y: float) -> float:
    """Divide; ``y=0`` fails with a ZeroDivisionError and its traceback."""
    return x / y


@shared_task(bind=True, max_retries=3, default_retry_delay=0.5)
def flaky(self, succeed_on: int = 2) -> str:  # type: ignore[no-untyped-def]
    """Fail until attempt ``succeed_on`` (1-based), retrying in between."""
    attempt = self.request.retries + 1
    if attempt < succeed_on:
        raise self.retry(exc=RuntimeError(f"attempt {attempt} failed, retrying"))
    return f"succeeded on attempt {attempt}"


@shared_task
def text_of_size(size: int) -> str:
    """Return a string of ``size`` characters (results larger than a 64 KB BLOB)."""
    return "x" * size


@shared_task(bind=True, base=SessionTask)
def rename_book(self: SessionTask, book_id: int, title: str) -> str:
    """The seed document's example: change a book through ``self.session``."""
    book = self.session.get(Book, book_id)
    if book is None:
        raise LookupError(f"There is no book {book_id}.")
    old, book.title = book.title, title
    self.session.commit()
    return f"{old!r} is now {title!r}"
