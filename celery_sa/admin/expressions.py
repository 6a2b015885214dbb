"""What the admin reads of a task row: the list's columns, and the value columns' heads
and sizes by SQL expressions (never a whole 10 MB value)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BinaryField, Func, IntegerField, Model, QuerySet
from django.db.models.functions import Substr
from django.db.models.sql.compiler import SQLCompiler

from celery_sa.admin.decoding import Decoded, decode, decode_limit
from celery_sa.db import adapters

if TYPE_CHECKING:
    from django.db.models.sql.compiler import _AsSqlType

Row = TypeVar("Row", bound=Model)

BLOB_COLUMNS = ("result", "args", "kwargs", "children", "stamps")
LIST_COLUMNS = (
    "id",
    "task_id",
    "name",
    "status",
    "date_sent",
    "date_started",
    "date_done",
    "worker",
    "queue",
    "retries",
)


class ByteLength(Func):
    """A binary column's size in bytes, by the function its database names it (not
    Django's Length, which mssql-django turns into LEN())."""

    output_field = IntegerField()

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> _AsSqlType:
        function = adapters.get_operations(connection).byte_length_function
        return super().as_sql(compiler, connection, function, template, arg_joiner, **extra_context)


def with_value_heads(
    queryset: QuerySet[Row], columns: tuple[str, ...] = BLOB_COLUMNS
) -> QuerySet[Row]:
    """Annotate each value column's first bytes, one past the decode limit, and its size:
    enough to decode any value that may be decoded, and never a whole 10 MB value."""
    head = decode_limit() + 1
    heads = {
        f"{column}_head": Substr(column, 1, head, output_field=BinaryField()) for column in columns
    }
    sizes = {f"{column}_size": ByteLength(column) for column in columns}
    annotated: QuerySet[Row] = queryset.annotate(**heads, **sizes)
    return annotated


def in_batches(queryset: QuerySet[Row], keys: Sequence[int], size: int) -> Iterator[Row]:
    """The rows of ``queryset`` with the primary keys ``keys``, in that order, read ``size``
    at a time: no database driver holds more than a batch of values (MySQL's drivers
    buffer a whole result, even for ``iterator()``)."""
    for start in range(0, len(keys), size):
        batch = keys[start : start + size]
        found = {row.pk: row for row in queryset.filter(pk__in=batch)}
        yield from (found[key] for key in batch if key in found)


def value_of(row: Any, column: str) -> Decoded | None:
    """The decoded value of a column of a row from :func:`with_value_heads`."""
    head = getattr(row, f"{column}_head", None)
    return decode(head, size=getattr(row, f"{column}_size", None))
