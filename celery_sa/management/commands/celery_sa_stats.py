"""``manage.py celery_sa_stats``: counts by status and task name over a time window
(:mod:`celery_sa.reports.stats` does the work)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from celery_sa.db.adapters.base import Replication
from celery_sa.db.outage import read_failure
from celery_sa.db.replica import replica_reads
from celery_sa.durations import describe_age, parse_age
from celery_sa.management.base import TranslatedCommand
from celery_sa.management.output import escape_controls
from celery_sa.models import TaskResult
from celery_sa.reports.runtimes import Runtime
from celery_sa.reports.stats import NameStats, Stats, collect_stats


class Command(TranslatedCommand):
    lazy_help = gettext_lazy(
        "Count the task results done in a recent window by status and by task name, "
        "with each task's failure rate and newest failure. A table, or JSON with --json."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        window = _("How far back the window reaches: 24h (default), 7d, 90m, 1d12h.")
        parser.add_argument("--since", default="24h", metavar="AGE", help=window)
        parser.add_argument("--json", action="store_true", help=_("Print JSON for scripts."))

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            window = parse_age(options["since"])
        except ValueError as exc:
            # Translators: error says what is wrong with the age given to --since.
            raise CommandError(_("--since: %(error)s") % {"error": exc}) from exc
        now = timezone.now()
        try:
            with replica_reads() as reads:
                stats = collect_stats(now - window, now)
                replication = reads.replication() if reads is not None else None
        except DatabaseError as exc:
            raise CommandError(read_failure(TaskResult._meta.db_table, exc).message) from exc
        if reads is not None and not reads.answered:
            self.stderr.write(reads.problem)
        elif reads is not None:
            self.stderr.write(replica_line(reads.alias, replication))
        if options["json"]:
            self.stdout.write(json.dumps(stats.as_dict(), indent=2))
            return
        self.write_tables(stats, describe_age(window))

    def write_tables(self, stats: Stats, window: str) -> None:
        if stats.total:
            self.write_window(stats, window)
        else:
            self.stdout.write(
                # Translators: window is a duration such as "1 day 12 hours".
                _("No task results done in the last %(window)s.") % {"window": window}
            )
        if stats.unfinished:
            self.stdout.write("")
            self.write_table(
                (_("Unfinished now"), _("Tasks"), _("Oldest for"), _("Oldest task")),
                [
                    (
                        entry.status,
                        f"{entry.count:,}",
                        describe_seconds(stats.age(entry)),
                        entry.oldest_task_id or "—",
                    )
                    for entry in stats.unfinished
                ],
                text_columns=(0, 3),
            )
        chords = stats.chords
        if chords is not None and chords.waiting:
            self.stdout.write("")
            self.stdout.write(
                # Translators: counts of chords; "after" and "oldest" are durations such as
                # "3,600 s".
                _(
                    "Chords waiting: %(waiting)s, stuck (waiting over %(after)s): %(stuck)s, "
                    "the oldest for %(oldest)s."
                )
                % {
                    "waiting": f"{chords.waiting:,}",
                    "stuck": f"{chords.stuck:,}",
                    "after": describe_seconds(chords.stuck_after.total_seconds()),
                    "oldest": describe_seconds(chords.oldest_wait),
                }
            )

    def write_durations(self, headings: tuple[str, ...], durations: list[Runtime]) -> None:
        self.write_table(
            headings,
            [
                (
                    entry.name or _("(no name)"),
                    f"{entry.count:,}",
                    f"{entry.quantile(0.5):.3f} s",
                    f"{entry.quantile(0.95):.3f} s",
                )
                for entry in durations
            ],
        )

    def write_window(self, stats: Stats, window: str) -> None:
        # Translators: window is a duration such as "1 day 12 hours"; total a number of results.
        heading = _("Task results done in the last %(window)s: %(total)s")
        self.stdout.write(heading % {"window": window, "total": f"{stats.total:,}"})
        self.stdout.write("")
        self.write_table(
            (_("Status"), _("Results")),
            [(status, f"{n:,}") for status, n in stats.by_status.items()],
        )
        self.stdout.write("")
        self.write_table(
            (_("Task name"), _("Results"), _("Failures"), _("Failure rate"), _("Newest failure")),
            [name_row(entry) for entry in stats.by_name],
            text_columns=(0, 4),
        )
        if stats.runtimes:
            self.stdout.write("")
            self.write_durations(
                (_("Task name"), _("Runs"), _("Runtime p50"), _("p95")), stats.runtimes
            )
        if stats.queue_waits:
            self.stdout.write("")
            self.write_durations(
                (_("Task name"), _("Ran once"), _("Queue wait p50"), _("p95")), stats.queue_waits
            )
        if stats.retried:
            self.stdout.write("")
            self.write_table(
                (_("Task name"), _("Exception"), _("Retries")),
                [
                    (entry.name or _("(no name)"), entry.exception or "—", f"{entry.retries:,}")
                    for entry in stats.retried
                ],
                text_columns=(0, 1),
            )

    def write_table(
        self, header: Sequence[str], rows: list[Sequence[str]], text_columns: Sequence[int] = (0,)
    ) -> None:
        """Columns padded to their widest cell: text left, counts and rates right."""
        # Measured as they are shown: control characters escaped (their escapes are wider).
        shown = [[escape_controls(cell) for cell in row] for row in [header, *rows]]
        widths = [max(len(row[i]) for row in shown) for i in range(len(header))]
        for row in shown:
            cells = [
                cell.ljust(width) if i in text_columns else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            self.stdout.write("  ".join(cells).rstrip())


def replica_line(alias: str, replication: Replication | None) -> str:
    """Where the figures come from, when it is a read replica."""
    if replication is None:
        # Translators: "alias" is a Django database alias.
        return _("Read from the replica %(alias)s.") % {"alias": alias}
    lag = "?" if replication.lag_seconds is None else f"{replication.lag_seconds:,.0f}"
    if not replication.running:
        # Translators: "alias" is a Django database alias, "lag" a number of seconds or "?".
        return _(
            "Read from the replica %(alias)s, whose replication is stopped (%(lag)s s behind)."
        ) % {"alias": alias, "lag": lag}
    # Translators: "alias" is a Django database alias, "lag" a number of seconds or "?".
    return _("Read from the replica %(alias)s, %(lag)s s behind the result database.") % {
        "alias": alias,
        "lag": lag,
    }


def describe_seconds(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:,.0f} s"


def name_row(entry: NameStats) -> tuple[str, str, str, str, str]:
    failure = entry.newest_failure
    newest = "—"
    if failure:
        when = timezone.localtime(failure.date_done).strftime("%Y-%m-%d %H:%M:%S")
        newest = f"{when}  {failure.task_id}  {failure.exception}".rstrip()
    return (
        entry.name or _("(no name)"),
        f"{entry.total:,}",
        f"{entry.failures:,}",
        f"{entry.failure_rate:.1%}",
        newest,
    )
