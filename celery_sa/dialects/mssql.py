"""SQL Server: pyodbc for Celery, mssql-django for Django. No server runs in the tests:
what is written here is checked as compiled SQL."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.translation import gettext_lazy
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    literal,
    select,
    text,
)
from sqlalchemy import Sequence as SequenceSchema
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import AddConstraint, CreateIndex, CreateSequence, DropConstraint
from sqlalchemy.sql import ClauseElement, ColumnElement, Executable
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.types import BigInteger, TypeEngine

from celery_sa.dialects.base import PLAIN_DISTINCT, Database, Driver, Execute
from celery_sa.errors import UnsupportedDatabase
from celery_sa.errors import translated as _
from celery_sa.tables.ddl import AlterTable, SequenceAfterIds

if TYPE_CHECKING:
    from celery_sa.tables.state import ColumnState

# Values are written whole in these; the deprecated IMAGE/TEXT/NTEXT, a bounded length or
# VARCHAR (the code page's characters only) is widened to them.
SAFE_VALUE_TYPES = ("VARBINARY(max)", "NVARCHAR(max)")
TEMPORARY_ID = "celery_sa_id"


class SQLServer(Database):
    names = ("mssql",)
    django_engine = "mssql"
    django_drivers = (Driver("mssql", "mssql-django"),)
    celery_drivers = {("mssql", "pyodbc"): Driver("pyodbc", "pyodbc")}
    default_port = "1433"
    # T-SQL's recursive queries have no RECURSIVE keyword; DISTINCT reads the index.
    distinct_sql = PLAIN_DISTINCT
    # At -2**63 for a BIGINT one: Celery 5.5 on SQLAlchemy 2 gets ids that overflow its INT.
    sequences_may_start_at_minimum = True
    byte_length_function = "DATALENGTH"  # LEN() leaves out trailing 0x20 bytes
    rewrite_note = gettext_lazy(
        "ALTER COLUMN rewrites it under a schema modification lock: reads and writes wait."
    )
    # SQLAlchemy 1.3 turned a Sequence into IDENTITY(start, increment) here.
    old_sqlalchemy_sequences = False
    old_sqlalchemy_identity = True

    def to_django(self, config: dict[str, Any], query: dict[str, str]) -> None:
        if "odbc_connect" in query:
            raise UnsupportedDatabase(
                _(
                    "CELERY_RESULT_BACKEND uses odbc_connect, which celery_sa cannot translate "
                    "for Django; give host, port and database in the URL and ?driver=… instead."
                )
            )
        if "driver" in query:
            config["OPTIONS"]["driver"] = query.pop("driver")
        if query:
            config["OPTIONS"]["extra_params"] = ";".join(f"{k}={v}" for k, v in query.items())

    def from_django(
        self, options: dict[str, Any], host: str | None
    ) -> tuple[dict[str, Any], str | None]:
        query: dict[str, Any] = {}
        for pair in str(options.pop("extra_params", "") or "").split(";"):
            key, sep, value = pair.partition("=")
            if sep:
                query[key.strip()] = value.strip()
        return {**query, **options}, host

    def estimate_rows(self, execute: Execute, schema: str | None, table: str) -> int | None:
        # The row count SQL Server keeps per heap or clustered index (no scan; sys.partitions
        # needs no VIEW DATABASE STATE, unlike sys.dm_db_partition_stats), over partitions.
        qualified = f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)
        value = execute(
            "SELECT SUM([rows]) FROM sys.partitions "
            "WHERE [object_id] = OBJECT_ID(%s) AND [index_id] IN (0, 1)",
            [qualified],
        )
        return None if value is None else int(value)

    def datetime_param(self, value: datetime, connection: BaseDatabaseWrapper) -> Any:
        # pyodbc sends a datetime as DATETIME2, and SQL Server (2016 on) compares a DATETIME
        # column with it at DATETIME2's precision: a time stored as .003 is .0033333 there,
        # so a date_done read back never equals its own row. Whole milliseconds (all that a
        # DATETIME reads back as) go as ISO 8601 text, which SQL Server converts to the
        # column's own type under any DATEFORMAT; finer times (a bound from the clock) stay
        # datetimes.
        if value.microsecond % 1000:
            return value
        return value.isoformat(timespec="milliseconds")

    def offline_dialect(self, name: str) -> Dialect:
        dialect = super().offline_dialect(name)
        # Without a server to ask, assume one SQLAlchemy would find at connect: 2012 or later
        # (sequences, VARBINARY(max) and VARCHAR(max) for LargeBinary and Text).
        dialect.server_version_info = (16, 0)
        dialect.deprecate_large_types = True  # type: ignore[attr-defined]
        dialect._supports_nvarchar_max = True  # type: ignore[attr-defined]
        return dialect

    def type_variants(self) -> dict[str, TypeEngine[Any]]:
        # VARBINARY(max) and NVARCHAR(max): SQLAlchemy's LargeBinary/Text are the
        # deprecated IMAGE/NTEXT here.
        return {"blob": mssql.VARBINARY(), "text": mssql.NVARCHAR()}  # type: ignore[no-untyped-call]

    def too_narrow(self, live: ColumnState, column: Column[Any]) -> str:
        if column.name == "id" and live.identity:
            sequence = column.default
            return _(
                "column id is an IDENTITY column (SQLAlchemy before 1.4 made it): Celery on "
                "SQLAlchemy 1.4 or later inserts ids from the sequence %(sequence)s, which SQL "
                "Server refuses there; rebuild it as a BIGINT column"
            ) % {"sequence": getattr(sequence, "name", "")}
        wanted = self.type_name(column.type)
        # The type alone: a live VARCHAR adds its collation.
        found = self.type_name(live.type).split(" COLLATE ")[0]
        if wanted in SAFE_VALUE_TYPES and found != wanted:
            # Translators: type and target are SQL Server types, e.g. IMAGE and VARBINARY(max).
            return _("column %(column)s is %(type)s; make it %(target)s") % {
                "column": column.name,
                "type": found,
                "target": wanted,
            }
        return super().too_narrow(live, column)

    def alter_statements(self, change: AlterTable) -> list[ExecutableDDLElement]:
        # T-SQL adds several columns in one ALTER TABLE, but alters one column per statement;
        # the id is part of the primary key, which has to go while it is widened.
        table = change.table
        statements: list[ExecutableDDLElement] = []
        if change.add:
            statements.append(AlterTable(table, add=change.add))
        values = [column for column in change.widen if column.name != "id"]
        statements += [AlterTable(table, widen=[column]) for column in values]
        if len(values) < len(change.widen):
            key = change.primary_key
            statements.append(
                WidenKey(
                    table,
                    name=key.name if key else None,
                    clustered=key.clustered if key else True,
                    identity=change.identity,
                )
            )
        return statements + [CreateIndex(index) for index in change.indexes]

    def next_sequence_value(self, connection: Connection, sequence: SequenceSchema) -> int | None:
        query = text(
            "SELECT CAST(CASE WHEN last_used_value IS NULL THEN current_value "
            "ELSE current_value + increment END AS BIGINT) "
            "FROM sys.sequences WHERE object_id = OBJECT_ID(:name)"
        )
        name = self.qualified(connection, sequence.name, sequence.schema)
        return int(connection.execute(query, {"name": name}).scalar_one())

    def sequence_is_bigint(self, connection: Connection, sequence: SequenceSchema) -> bool:
        query = text(
            "SELECT TYPE_NAME(system_type_id) FROM sys.sequences WHERE object_id = OBJECT_ID(:name)"
        )
        name = self.qualified(connection, sequence.name, sequence.schema)
        return bool(connection.execute(query, {"name": name}).scalar_one() == "bigint")

    def widen_sequence_statements(
        self, sequence: SequenceSchema, next_value: int | None
    ) -> list[ExecutableDDLElement]:
        # ALTER SEQUENCE cannot change the type: drop it and make it again where it was.
        assert next_value is not None, "only a live sequence is widened, its position known"
        wide = SequenceSchema(
            sequence.name, start=next_value, data_type=BigInteger(), schema=sequence.schema
        )
        return [Transaction(["DROP SEQUENCE {sequence}", CreateSequence(wide)], sequence)]

    def upsert(
        self,
        table: Table,
        values: dict[str, Any],
        key: str,
        keep: ColumnElement[bool] | None = None,
    ) -> Executable:
        return Merge(table, values, (key,), update=True, keep=keep)

    def insert_missing(self, table: Table, values: dict[str, Any]) -> Executable:
        keys = tuple(column.name for column in table.primary_key.columns)
        return Merge(table, values, keys, update=False)


@compiles(AlterTable, "mssql")
def _alter_table(element: AlterTable, compiler: Any, **kw: Any) -> str:
    table = compiler.preparer.format_table(element.table)
    if element.widen:
        (column,) = element.widen
        name = compiler.preparer.format_column(column)
        null = "NULL" if column.nullable else "NOT NULL"  # else T-SQL picks one itself
        type_ = column.type.compile(dialect=compiler.dialect)
        return f"ALTER TABLE {table} ALTER COLUMN {name} {type_} {null}"
    specs = ", ".join(compiler.get_column_specification(c) for c in element.add)
    return f"ALTER TABLE {table} ADD {specs}"


class Transaction(ExecutableDDLElement):
    """Statements run as one T-SQL batch in one transaction, all or none (XACT_ABORT rolls
    back on any error). A piece is a DDL element or T-SQL text, where ``{sequence}`` and
    ``{table}`` stand for the quoted names of ``subject``."""

    def __init__(self, pieces: list[ExecutableDDLElement | str], subject: Any) -> None:
        self.pieces = pieces
        self.subject = subject


@compiles(Transaction, "mssql")
def _transaction(element: Transaction, compiler: Any, **kw: Any) -> str:
    preparer = compiler.preparer
    names = (
        {"sequence": preparer.format_sequence(element.subject)}
        if isinstance(element.subject, SequenceSchema)
        else {"table": preparer.format_table(element.subject)}
    )
    body = [
        piece.format(**names) if isinstance(piece, str) else compiler.process(piece, **kw).strip()
        for piece in element.pieces
    ]
    return ";\n".join(["SET XACT_ABORT ON", "BEGIN TRANSACTION", *body, "COMMIT TRANSACTION"])


class WidenKey(ExecutableDDLElement):
    """Make ``table``'s id BIGINT: its primary key dropped, the column altered (an IDENTITY
    column copied into a plain one) and the key made again by the same name, in one
    transaction."""

    def __init__(self, table: Table, *, name: str | None, clustered: bool, identity: bool) -> None:
        self.table = table
        self.name = name
        """The key constraint's name; None: not known, the batch looks it up."""
        self.clustered = clustered
        self.identity = identity


def _literal(text_: str) -> str:
    """``text_`` as a T-SQL Unicode string literal."""
    return "N'" + text_.replace("'", "''") + "'"


@compiles(WidenKey, "mssql")
def _widen_key(element: WidenKey, compiler: Any, **kw: Any) -> str:
    preparer = compiler.preparer
    table = element.table
    name = preparer.format_table(table)
    identifier = preparer.quote("id")
    pieces: list[str] = []
    if element.name is None:
        # SQL Server named it (PK__celery_t__…): look the name up, use it twice.
        clustered = "CLUSTERED" if element.clustered else "NONCLUSTERED"
        pieces.append(
            "DECLARE @celery_sa_pk sysname = (SELECT name FROM sys.key_constraints "
            f"WHERE type = 'PK' AND parent_object_id = OBJECT_ID({_literal(name)}))"
        )
        drop_sql = _literal(f"ALTER TABLE {name} DROP CONSTRAINT ")
        drop = f"EXEC({drop_sql} + QUOTENAME(@celery_sa_pk))"
        add_sql = _literal(f"ALTER TABLE {name} ADD CONSTRAINT ")
        key_sql = _literal(f" PRIMARY KEY {clustered} ({identifier})")
        add = f"EXEC({add_sql} + QUOTENAME(@celery_sa_pk) + {key_sql})"
    else:
        stand_in = Table(
            table.name,
            MetaData(),
            Column("id", BigInteger()),
            PrimaryKeyConstraint("id", name=element.name, mssql_clustered=element.clustered),
            schema=table.schema,
        )
        drop = compiler.process(DropConstraint(stand_in.primary_key), **kw).strip()
        add = compiler.process(AddConstraint(stand_in.primary_key), **kw).strip()
    pieces += ["SET XACT_ABORT ON", "BEGIN TRANSACTION"]
    if element.identity:
        # An IDENTITY property cannot be removed: copy the ids into a plain column.
        temporary = preparer.quote(TEMPORARY_ID)
        pieces.append(f"ALTER TABLE {name} ADD {temporary} BIGINT NULL")
        # Through EXEC: the batch is compiled before the column exists.
        pieces.append(f"EXEC({_literal(f'UPDATE {name} SET {temporary} = {identifier}')})")
        pieces.append(drop)
        pieces.append(f"ALTER TABLE {name} DROP COLUMN {identifier}")
        rename = _literal(f"{name}.{temporary}")
        pieces.append(f"EXEC sp_rename {rename}, N'id', N'COLUMN'")
    else:
        pieces.append(drop)
    pieces.append(f"ALTER TABLE {name} ALTER COLUMN {identifier} BIGINT NOT NULL")
    pieces += [add, "COMMIT TRANSACTION"]
    return ";\n".join(pieces)


@compiles(SequenceAfterIds, "mssql")
def _sequence_after_ids(element: SequenceAfterIds, compiler: Any, **kw: Any) -> str:
    # ALTER SEQUENCE … RESTART WITH takes a constant only: build the statement.
    preparer = compiler.preparer
    sequence = preparer.format_sequence(element.sequence)
    identifier = preparer.quote("id")
    return (
        # After the highest id, and at 1 at least: ids from the minimum may be there.
        "DECLARE @celery_sa_restart BIGINT = "
        f"(SELECT CASE WHEN MAX({identifier}) > 0 THEN MAX({identifier}) ELSE 0 END + 1 "
        f"FROM {preparer.format_table(element.table)});\n"
        f"EXEC({_literal(f'ALTER SEQUENCE {sequence} RESTART WITH ')} + "
        "CAST(@celery_sa_restart AS NVARCHAR(20)))"
    )


class Merge(Executable, ClauseElement):
    """``MERGE`` of one row into ``table`` by its ``keys`` columns (SQLAlchemy has no MERGE
    construct; this one is compiled from SQLAlchemy's own pieces)."""

    inherit_cache = False

    def __init__(
        self,
        table: Table,
        values: dict[str, Any],
        keys: tuple[str, ...],
        update: bool,
        keep: ColumnElement[bool] | None = None,
    ) -> None:
        self.table = table
        self.values = values
        self.keys = keys
        self.update = update
        self.keep = keep


@compiles(Merge, "mssql")
def _merge(element: Merge, compiler: Any, **kw: Any) -> str:
    preparer = compiler.preparer
    table = element.table
    target = preparer.format_table(table)
    source = select(
        *(
            # A bound parameter as it is; a plain value bound with the column's type.
            (
                value if isinstance(value, ColumnElement) else literal(value, table.c[name].type)
            ).label(name)
            for name, value in element.values.items()
        )
    )
    names = list(element.values)
    match = " AND ".join(
        f"{target}.{preparer.quote(k)} = source.{preparer.quote(k)}" for k in element.keys
    )
    sql = (
        f"MERGE INTO {target} WITH (HOLDLOCK) USING ({compiler.process(source, **kw)}) AS source "
        f"ON {match}"
    )
    if element.update:
        condition = (
            "" if element.keep is None else f" AND NOT ({compiler.process(element.keep, **kw)})"
        )
        assignments = ", ".join(
            f"{preparer.quote(n)} = source.{preparer.quote(n)}"
            for n in names
            if n not in element.keys
        )
        sql += f" WHEN MATCHED{condition} THEN UPDATE SET {assignments}"
    columns = [preparer.quote(n) for n in names]
    inserted = [f"source.{preparer.quote(n)}" for n in names]
    sequence = table.c.id.default if "id" in table.c and "id" not in element.values else None
    if isinstance(sequence, SequenceSchema):
        columns.insert(0, preparer.quote("id"))
        inserted.insert(0, compiler.process(sequence.next_value(), **kw))
    return (
        f"{sql} WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({', '.join(inserted)});"
    )
