"""The task list's CSV export: streamed in small batches of rows, each value read only up
to what can be decoded and written only up to what a spreadsheet cell holds."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db.models import QuerySet, TextField
from django.db.models.functions import Length, Substr
from django.http import StreamingHttpResponse
from django.utils.translation import gettext as _

from celery_sa.admin.expressions import in_batches, value_of, with_value_heads
from celery_sa.models import TaskResult

CSV_COLUMNS = ("task_id", "name", "status", "date_done", "worker", "queue", "retries")
VALUE_COLUMNS = ("args", "kwargs", "result")
# Each row may carry three values of up to DECODE_LIMIT (1 MB) each: a batch of 5 keeps the
# export under 40 MB (measured: 37 MB with every value at 1 MB, 67 MB in batches of 10),
# whatever the database driver buffers.
BATCH_ROWS = 5
# The most characters a cell of Excel (and so of most spreadsheets) holds.
CELL_LIMIT = 32_767
# A cell a spreadsheet would read as a formula starts with one of these (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object, length: int | None = None) -> object:
    """``value`` as a CSV cell no spreadsheet runs as a formula and every spreadsheet
    holds: text that starts like a formula gets a leading apostrophe (OWASP's CSV injection
    rule), text past :data:`CELL_LIMIT` is cut with a marker that counts the rest (of
    ``length`` characters, when ``value`` is only the head of a longer text); numbers and
    dates stay."""
    if not isinstance(value, str):
        return value
    length = len(value) if length is None else length
    if value.startswith(FORMULA_STARTS):
        value, length = "'" + value, length + 1
    if length > CELL_LIMIT:
        # Translators: ends a cut CSV cell; "count" is a number of characters.
        marker = _("… (%(count)d more characters)")
        kept = CELL_LIMIT - len(marker % {"count": length}) - 1
        value = value[:kept] + "\n" + marker % {"count": length - kept}
    return value


class Echo:
    """A file that hands back what is written to it: the csv writer then returns each
    line instead of buffering the whole file."""

    def write(self, value: str) -> str:
        return value


def csv_response(queryset: QuerySet[TaskResult], max_rows: int) -> StreamingHttpResponse:
    """The first ``max_rows`` rows as CSV, newest first, values decoded (or what prevents
    it). The keys are read first, the rows then a batch at a time."""
    ordered = queryset.order_by("-date_done", "-id")
    keys = list(ordered.values_list("pk", flat=True)[:max_rows])
    rows = with_value_heads(
        queryset.model._default_manager.using(queryset.db).only(*CSV_COLUMNS), VALUE_COLUMNS
    ).annotate(
        traceback_head=Substr("traceback", 1, CELL_LIMIT, output_field=TextField()),
        traceback_length=Length("traceback"),
    )
    writer = csv.writer(Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow([*CSV_COLUMNS, *VALUE_COLUMNS, "traceback"])
        for row in in_batches(rows, keys, BATCH_ROWS):
            values = [getattr(row, column) for column in CSV_COLUMNS]
            decoded = [value_of(row, column) for column in VALUE_COLUMNS]
            texts = [(d.problem or d.text) if d else "" for d in decoded]
            traceback = cell(row.traceback_head or "", row.traceback_length)  # type: ignore[attr-defined]
            yield writer.writerow([*(cell(v) for v in (*values, *texts)), traceback])

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="celery-task-results.csv"'
    return response
