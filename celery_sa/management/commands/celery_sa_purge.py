"""``manage.py celery_sa_purge``: delete old results in small transactions
(:mod:`celery_sa.housekeeping.purge` does the work)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import ngettext

from celery_sa.errors import unreadable_table
from celery_sa.housekeeping.durations import describe_age
from celery_sa.housekeeping.purge import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_JOBS,
    MAX_BATCH_SIZE,
    MAX_JOBS,
    PurgeOptions,
    PurgeResult,
    count,
    purge,
)
from celery_sa.models import TaskResult

INTERRUPTED_EXIT = 130
BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Delete task and group results older than an age (default: CELERY_RESULT_EXPIRES), "
        "a few thousand rows a transaction, in primary-key ranges (a status or name "
        "selection along its own index). Safe to interrupt and run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            metavar="AGE",
            help="Age of the results to delete: 7d, 12h, 90m, 1d12h (default: "
            "CELERY_RESULT_EXPIRES, which Celery defaults to one day).",
        )
        parser.add_argument(
            "--status",
            action="append",
            default=[],
            dest="statuses",
            metavar="STATUS",
            help="Only task results in this state (repeat or comma-separate). Group "
            "results have no state and are then left alone.",
        )
        parser.add_argument(
            "--name",
            action="append",
            default=[],
            dest="names",
            metavar="TASK_NAME",
            help="Only results of this task (repeat or comma-separate); needs "
            "CELERY_RESULT_EXTENDED. Group results are then left alone.",
        )
        parser.add_argument(
            "--no-groups",
            action="store_false",
            dest="groups",
            help="Leave the group results alone.",
        )
        parser.add_argument(
            "--undated",
            action="store_true",
            help="Also delete task results without a date_done (their age is unknown: "
            "Celery never finished storing them).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows deleted per transaction (default {DEFAULT_BATCH_SIZE:,}, at most "
            f"{MAX_BATCH_SIZE:,}).",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=DEFAULT_JOBS,
            help=f"Batches deleted at the same time, each on a connection of its own (default "
            f"{DEFAULT_JOBS}, at most {MAX_JOBS}; always 1 on SQLite).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be deleted; delete nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            purge_options = PurgeOptions.parse(
                options["older_than"],
                statuses=options["statuses"],
                names=options["names"],
                groups=options["groups"],
                undated=options["undated"],
                batch_size=options["batch_size"],
                jobs=options["jobs"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        verbose = options["verbosity"] >= 2
        try:
            if options["dry_run"]:
                self.report(purge_options, count(purge_options), dry_run=True)
                return
            # One "now" for the progress bar's count, the line below and the purge itself.
            now = timezone.now()
            bar = self.progress_bar(purge_options, now) if self.stdout.isatty() else None
            if verbose:
                cutoff = timezone.localtime(now - purge_options.older_than)
                self.stdout.write(
                    f"Deleting results done before {cutoff:%Y-%m-%d %H:%M:%S %Z}, at most "
                    f"{purge_options.batch_size:,} rows a transaction."
                )
            batches = 0

            def on_batch(rows: int) -> None:  # called under the purge's lock
                nonlocal batches
                batches += 1
                if bar:
                    bar(rows)
                if verbose:
                    self.stdout.write(f"Batch {batches}: deleted {rows:,} rows.")

            with stop_on_ctrl_c(self.stdout) as stopping:
                result = purge(purge_options, now=now, on_batch=on_batch, stop=stopping.is_set)
        except DatabaseError as exc:
            raise CommandError(unreadable_table(TaskResult._meta.db_table, exc)) from exc
        if bar:
            self.stdout.write("")
        self.report(purge_options, result, dry_run=False)
        if verbose:
            self.stdout.write(f"{result.batches:,} batches in {result.seconds:.1f} s.")
        if result.interrupted:
            raise CommandError(
                "Interrupted; run the command again to carry on.", returncode=INTERRUPTED_EXIT
            )

    def progress_bar(self, options: PurgeOptions, now: datetime) -> Any:
        planned = count(options, now=now)
        total = max(planned.tasks + planned.groups, 1)
        done = 0

        def advance(rows: int) -> None:
            nonlocal done
            done += rows
            filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
            self.stdout.write(
                f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {min(done, total):,} of "
                f"{total:,} rows",
                ending="",
            )
            self.stdout.flush()

        return advance

    def report(self, options: PurgeOptions, result: PurgeResult, *, dry_run: bool) -> None:
        dated = result.tasks - result.undated
        what = [tasks(dated)]
        if options.groups:
            what.append(
                ngettext("%(n)s group result", "%(n)s group results", result.groups)
                % {"n": f"{result.groups:,}"}
            )
        if result.chords:
            what.append(
                ngettext(
                    "%(n)s unfinished chord counter",
                    "%(n)s unfinished chord counters",
                    result.chords,
                )
                % {"n": f"{result.chords:,}"}
            )
        selection = []
        if options.statuses:
            selection.append(f"status {', '.join(options.statuses)}")
        if options.names:
            selection.append(f"name {', '.join(options.names)}")
        chosen = f" ({'; '.join(selection)})" if selection else ""
        verb = "Would delete" if dry_run else "Deleted"
        age = describe_age(options.older_than)
        self.stdout.write(f"{verb} {' and '.join(what)}{chosen} older than {age}.")
        if options.undated:
            self.stdout.write(f"{verb} {tasks(result.undated)} without a date_done.")
        elif result.undated_kept:
            self.stdout.write(
                f"Kept {tasks(result.undated_kept)} without a date_done (never finished): "
                "--undated deletes them."
            )
        if dry_run:
            self.stdout.write("Dry run: nothing was deleted.")


@contextmanager
def stop_on_ctrl_c(stdout: OutputWrapper) -> Iterator[threading.Event]:
    """The first Ctrl-C lets the batch in progress commit and stops there; a second one
    stops at once (that batch rolls back)."""
    stopping = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stopping
        return

    def first(signum: int, frame: Any) -> None:
        stopping.set()
        stdout.write("\nStopping after this batch (Ctrl-C again to stop now).")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield stopping
    finally:
        signal.signal(signal.SIGINT, previous)


def tasks(rows: int) -> str:
    return ngettext("%(n)s task result", "%(n)s task results", rows) % {"n": f"{rows:,}"}
