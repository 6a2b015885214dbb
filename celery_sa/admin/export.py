"""The task list's CSV export, streamed row by row (a selection may be the whole table)."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from celery_sa.admin.expressions import LIST_COLUMNS, value_of, with_value_heads
from celery_sa.models import TaskResult

CSV_COLUMNS = ("task_id", "name", "status", "date_done", "worker", "queue", "retries")
CHUNK_ROWS = 500
# A cell a spreadsheet would read as a formula starts with one of these (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """``value`` as a CSV cell no spreadsheet runs as a formula: text that starts like one
    gets a leading apostrophe (OWASP's CSV injection rule); numbers and dates stay."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class Echo:
    """A file that hands back what is written to it: the csv writer then returns each
    line instead of buffering the whole file."""

    def write(self, value: str) -> str:
        return value


def csv_response(queryset: QuerySet[TaskResult]) -> StreamingHttpResponse:
    """The rows as CSV, newest first, values decoded (or what prevents it)."""
    writer = csv.writer(Echo())
    rows = with_value_heads(queryset.only(*LIST_COLUMNS, "traceback"))

    def lines() -> Iterator[str]:
        yield writer.writerow([*CSV_COLUMNS, "args", "kwargs", "result", "traceback"])
        for row in rows.order_by("-date_done", "-id").iterator(chunk_size=CHUNK_ROWS):
            values = [getattr(row, column) for column in CSV_COLUMNS]
            decoded = [value_of(row, column) for column in ("args", "kwargs", "result")]
            texts = [(d.problem or d.text) if d else "" for d in decoded]
            yield writer.writerow([cell(v) for v in (*values, *texts, row.traceback or "")])

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="celery-task-results.csv"'
    return response
