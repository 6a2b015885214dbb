"""``manage.py celery_sa_purge``: delete old results in small transactions
(:mod:`celery_sa.housekeeping.purge` does the work)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from celery_sa.db.outage import read_failure
from celery_sa.durations import describe_age
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
from celery_sa.management.base import TranslatedCommand
from celery_sa.models import TaskResult

INTERRUPTED_EXIT = 130
BAR_WIDTH = 30


class Command(TranslatedCommand):
    lazy_help = gettext_lazy(
        "Delete task and group results older than an age (default: "
        "CELERY_RESULT_EXPIRES), a few thousand rows a transaction, in primary-key ranges "
        "(a status or name selection along its own index). Safe to interrupt and run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        self.add_selection_arguments(parser)
        self.add_scope_arguments(parser)
        self.add_batch_arguments(parser)

    def add_selection_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            metavar="AGE",
            help=_(
                "Age of the results to delete: 7d, 12h, 90m, 1d12h (default: "
                "CELERY_RESULT_EXPIRES, which Celery defaults to one day)."
            ),
        )
        # Each may be given several times or comma-separated, collected in a list.
        repeatable = (
            (
                "--status",
                "statuses",
                "STATUS",
                _(
                    "Only task results in this state (repeat or comma-separate). Group "
                    "results have no state and are then left alone."
                ),
            ),
            (
                "--name",
                "names",
                "TASK_NAME",
                _(
                    "Only results of this task (repeat or comma-separate); needs "
                    "CELERY_RESULT_EXTENDED. Group results are then left alone."
                ),
            ),
        )
        for option, dest, metavar, text in repeatable:
            parser.add_argument(
                option, action="append", default=[], dest=dest, metavar=metavar, help=text
            )

    def add_scope_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-groups",
            action="store_false",
            dest="groups",
            help=_("Leave the group results alone."),
        )
        parser.add_argument(
            "--undated",
            action="store_true",
            help=_(
                "Also delete task results without a date_done (their age is unknown: "
                "Celery never finished storing them)."
            ),
        )

    def add_batch_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=_("Rows deleted per transaction (default %(default)s, at most %(max)s).")
            % {"default": f"{DEFAULT_BATCH_SIZE:,}", "max": f"{MAX_BATCH_SIZE:,}"},
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=DEFAULT_JOBS,
            help=_(
                "Batches deleted at the same time, each on a connection of its own (default "
                "%(default)s, at most %(max)s; always 1 on SQLite)."
            )
            % {"default": DEFAULT_JOBS, "max": MAX_JOBS},
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("Count what would be deleted; delete nothing."),
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
            result = self.run_purge(purge_options, verbose=verbose)
        except DatabaseError as exc:
            raise CommandError(read_failure(TaskResult._meta.db_table, exc).message) from exc
        self.report(purge_options, result, dry_run=False)
        if verbose:
            timing = ngettext(
                "%(n)s batches in %(seconds)s s.", "%(n)s batches in %(seconds)s s.", result.batches
            )
            self.stdout.write(
                timing % {"n": f"{result.batches:,}", "seconds": f"{result.seconds:.1f}"}
            )
        if result.interrupted:
            raise CommandError(
                _("Interrupted; run the command again to carry on."), returncode=INTERRUPTED_EXIT
            )

    def run_purge(self, options: PurgeOptions, *, verbose: bool) -> PurgeResult:
        """The purge, with a progress bar on a terminal and a line a batch when verbose."""
        # One "now" for the progress bar's count, the line below and the purge itself.
        now = timezone.now()
        bar = self.progress_bar(options, now) if self.stdout.isatty() else None
        if verbose:
            self.write_start(options, now)
        on_batch = self.batch_listener(bar, verbose=verbose)
        with stop_on_ctrl_c(self.stdout) as stopping:
            result = purge(options, now=now, on_batch=on_batch, stop=stopping.is_set)
        if bar:
            self.stdout.write("")
        return result

    def write_start(self, options: PurgeOptions, now: datetime) -> None:
        cutoff = timezone.localtime(now - options.older_than)
        # English says "rows" for 1 too, as it always has (the tests compare output).
        starting = ngettext(
            "Deleting results done before %(cutoff)s, at most %(n)s rows a transaction.",
            "Deleting results done before %(cutoff)s, at most %(n)s rows a transaction.",
            options.batch_size,
        )
        self.stdout.write(
            starting % {"cutoff": f"{cutoff:%Y-%m-%d %H:%M:%S %Z}", "n": f"{options.batch_size:,}"}
        )

    def batch_listener(
        self, bar: Callable[[int], None] | None, *, verbose: bool
    ) -> Callable[[int], None]:
        """What the purge calls (under its lock) after each batch: the bar moves on, and a
        verbose run says the batch's rows."""
        batches = 0

        def on_batch(rows: int) -> None:
            nonlocal batches
            batches += 1
            if bar:
                bar(rows)
            if verbose:
                done = ngettext(
                    # Translators: batch is the batch's number (1, 2, ...); n its rows.
                    "Batch %(batch)s: deleted %(n)s rows.",
                    "Batch %(batch)s: deleted %(n)s rows.",
                    rows,
                )
                self.stdout.write(done % {"batch": batches, "n": f"{rows:,}"})

        return on_batch

    def progress_bar(self, options: PurgeOptions, now: datetime) -> Callable[[int], None]:
        planned = count(options, now=now)
        total = max(planned.tasks + planned.groups, 1)
        done = 0

        def advance(rows: int) -> None:
            nonlocal done
            done += rows
            filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
            progress = ngettext(
                "%(done)s of %(total)s rows", "%(done)s of %(total)s rows", total
            ) % {"done": f"{min(done, total):,}", "total": f"{total:,}"}
            self.stdout.overwrite_line(f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {progress}")
            self.stdout.flush()

        return advance

    def report(self, options: PurgeOptions, result: PurgeResult, *, dry_run: bool) -> None:
        self.stdout.write(summary(options, result, dry_run=dry_run))
        if options.undated:
            undated = (
                # Translators: tasks is e.g. "3 task results".
                _("Would delete %(tasks)s without a date_done.")
                if dry_run
                # Translators: tasks is e.g. "3 task results".
                else _("Deleted %(tasks)s without a date_done.")
            )
            self.stdout.write(undated % {"tasks": tasks(result.undated)})
        elif result.undated_kept:
            # Translators: tasks is e.g. "3 task results".
            kept = _("Kept %(tasks)s without a date_done (never finished): --undated deletes them.")
            self.stdout.write(kept % {"tasks": tasks(result.undated_kept)})
        if dry_run:
            self.stdout.write(_("Dry run: nothing was deleted."))


def summary(options: PurgeOptions, result: PurgeResult, *, dry_run: bool) -> str:
    """The report's first line: what was (or would be) deleted, of which selection, how old."""
    selection = selected(options)
    if dry_run:
        line = (
            # Translators: what is e.g. "5 task results and 2 group results"; selection
            # e.g. "status FAILURE; name myapp.tasks.add"; age e.g. "7 days".
            _("Would delete %(what)s (%(selection)s) older than %(age)s.")
            if selection
            # Translators: what is e.g. "5 task results and 2 group results"; age e.g.
            # "7 days".
            else _("Would delete %(what)s older than %(age)s.")
        )
    else:
        line = (
            # Translators: what is e.g. "5 task results and 2 group results"; selection
            # e.g. "status FAILURE; name myapp.tasks.add"; age e.g. "7 days".
            _("Deleted %(what)s (%(selection)s) older than %(age)s.")
            if selection
            # Translators: what is e.g. "5 task results and 2 group results"; age e.g.
            # "7 days".
            else _("Deleted %(what)s older than %(age)s.")
        )
    return line % {
        "what": and_list(deleted(options, result)),
        "selection": "; ".join(selection),
        "age": describe_age(options.older_than),
    }


def deleted(options: PurgeOptions, result: PurgeResult) -> list[str]:
    """The kinds of rows deleted, counted: task results, their attempts, group results,
    chord counters."""
    what = [tasks(result.tasks - result.undated)]
    if result.attempts:
        what.append(
            ngettext("%(n)s task attempt", "%(n)s task attempts", result.attempts)
            % {"n": f"{result.attempts:,}"}
        )
    if options.groups:
        what.append(
            ngettext("%(n)s group result", "%(n)s group results", result.groups)
            % {"n": f"{result.groups:,}"}
        )
    if result.members:
        what.append(
            # Translators: rows of celery_sa's table of each group's tasks.
            ngettext("%(n)s group member row", "%(n)s group member rows", result.members)
            % {"n": f"{result.members:,}"}
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
    return what


def selected(options: PurgeOptions) -> list[str]:
    """The statuses and names the purge was limited to, described."""
    selection = []
    if options.statuses:
        # Translators: statuses lists Celery states, e.g. "FAILURE, REVOKED".
        selection.append(_("status %(statuses)s") % {"statuses": ", ".join(options.statuses)})
    if options.names:
        # Translators: names lists task names, e.g. "myapp.tasks.add".
        selection.append(_("name %(names)s") % {"names": ", ".join(options.names)})
    return selection


@contextmanager
def stop_on_ctrl_c(stdout: OutputWrapper) -> Iterator[threading.Event]:
    """The first Ctrl-C lets the batch in progress commit and stops there; a second one
    stops at once (that batch rolls back)."""
    stopping = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stopping
        return
    # Looked up now: a signal handler had better not load a translation catalogue.
    notice = _("Stopping after this batch (Ctrl-C again to stop now).")

    def first(signum: int, frame: Any) -> None:
        stopping.set()
        stdout.write(f"\n{notice}")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield stopping
    finally:
        signal.signal(signal.SIGINT, previous)


def tasks(rows: int) -> str:
    return ngettext("%(n)s task result", "%(n)s task results", rows) % {"n": f"{rows:,}"}


def and_list(items: list[str]) -> str:
    """``["a", "b", "c"]`` -> ``"a and b and c"``, in the active language."""
    joined = items[0]
    for item in items[1:]:
        # Translators: joins two parts of what is deleted, e.g. "5 task results" and
        # "2 group results".
        joined = _("%(first)s and %(second)s") % {"first": joined, "second": item}
    return joined
