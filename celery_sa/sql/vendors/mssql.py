"""SQL Server: the SQL celery_sa runs there. No server runs in the tests: what is written
here is checked as compiled SQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Connection,
    Table,
    literal,
    select,
    text,
)
from sqlalchemy import Sequence as SequenceSchema
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql import ClauseElement, ColumnElement, Executable
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.types import TypeEngine

from celery_sa.sql.ddl import AlterTable, SequenceAfterIds
from celery_sa.sql.text import Message, gettext_noop
from celery_sa.sql.vendors import base

if TYPE_CHECKING:
    from celery_sa.sql.state import ColumnState

# Values are written whole in these; the deprecated IMAGE/TEXT/NTEXT, a bounded length or
# VARCHAR (the code page's characters only) is widened to them.
SAFE_VALUE_TYPES = ("VARBINARY(max)", "NVARCHAR(max)")
TEMPORARY_ID = "celery_sa_id"


class SQLServerDDL(base.DDLRules):
    batch_separator = "GO"
    script_advice = gettext_noop("Run it with sqlcmd -b, which stops at the first failed batch.")
    rewrite_note = gettext_noop(
        "ALTER COLUMN rewrites it under a schema modification lock: reads and writes wait."
    )

    def too_narrow(self, live: ColumnState, column: Column[Any]) -> Message | None:
        if column.name == "id" and live.identity:
            return Message(
                gettext_noop(
                    "column id is an IDENTITY column (SQLAlchemy before 1.4 made it): Celery on "
                    "SQLAlchemy 1.4 or later inserts ids from the sequence %(sequence)s, which "
                    "SQL Server refuses there; rebuild it as a BIGINT column"
                ),
                {"sequence": getattr(column.default, "name", "")},
            )
        wanted = self.vendor.type_name(column.type)
        # The type alone: a live VARCHAR adds its collation.
        found = self.vendor.type_name(live.type).split(" COLLATE ")[0]
        if wanted in SAFE_VALUE_TYPES and found != wanted:
            return Message(
                # Translators: type and target are SQL Server types, e.g. IMAGE and VARBINARY(max).
                gettext_noop("column %(column)s is %(type)s; make it %(target)s"),
                {"column": column.name, "type": found, "target": wanted},
            )
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
            statements.append(WidenKey(table, identity=change.identity))
        return statements + [CreateIndex(index) for index in change.indexes]

    def widen_sequence_statements(
        self, sequence: SequenceSchema, table: Table, next_value: int | None
    ) -> list[ExecutableDDLElement]:
        return [RebuildSequenceAsBigint(sequence, table)]

    def run_ddl(self, connection: Connection, statement: ExecutableDDLElement) -> None:
        # A batch may give several results, and pyodbc raises a later statement's error only
        # when its result is reached: read them all.
        sql = str(statement.compile(dialect=connection.dialect)).strip()
        dbapi = connection.dialect.loaded_dbapi
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql)
            while cursor.nextset():
                pass
        except dbapi.Error as exc:
            raise DBAPIError.instance(sql, None, exc, dbapi.Error) from exc
        finally:
            cursor.close()


class SQLServerIntrospection(base.Introspection):
    def estimate_rows(self, execute: base.Execute, schema: str | None, table: str) -> int | None:
        # The row count SQL Server keeps per heap or clustered index (no scan; sys.partitions
        # needs no VIEW DATABASE STATE, unlike sys.dm_db_partition_stats), over partitions.
        value = execute(
            "SELECT SUM([rows]) FROM sys.partitions "
            "WHERE [object_id] = OBJECT_ID(%s) AND [index_id] IN (0, 1)",
            [self.vendor.quote_table(schema, table)],
        )
        return None if value is None else int(value)

    def next_sequence_value(self, connection: Connection, sequence: SequenceSchema) -> int | None:
        # sys.sequences' values are sql_variant: cast before adding (pyodbc cannot read them
        # either). Whether it was ever used: last_used_value from SQL Server 2017 on.
        version = connection.dialect.server_version_info or (0,)
        used = "last_used_value IS NOT NULL" if version >= (14,) else "current_value <> start_value"
        query = text(
            "SELECT CAST(current_value AS BIGINT) "
            f"+ CASE WHEN {used} THEN CAST(increment AS BIGINT) ELSE 0 END "
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


class SQLServerWrites(base.Writes):
    def upsert(
        self, table: Table, values: base.Row, key: str, keep: base.Keep = None
    ) -> Executable:
        return Merge(table, values, (key,), update=True, keep=keep)

    def insert_missing(self, table: Table, values: base.Row) -> Executable:
        keys = tuple(column.name for column in table.primary_key.columns)
        return Merge(table, values, keys, update=False)


class SQLServer(base.Vendor):
    names = ("mssql",)
    # At -2**63 for a BIGINT one: Celery 5.5 on SQLAlchemy 2 gets ids that overflow its INT.
    sequences_may_start_at_minimum = True
    restarts_in_sql = True
    # SQLAlchemy 1.3 turned a Sequence into IDENTITY(start, increment) here.
    old_sqlalchemy_sequences = False
    old_sqlalchemy_identity = True
    ddl_class = SQLServerDDL
    introspection_class = SQLServerIntrospection
    writes_class = SQLServerWrites

    def assume_server(self, dialect: Dialect, name: str) -> None:
        # One SQLAlchemy would find at connect: 2012 or later (sequences, VARBINARY(max) and
        # VARCHAR(max) for LargeBinary and Text).
        dialect.server_version_info = (16, 0)
        dialect.deprecate_large_types = True  # type: ignore[attr-defined]
        dialect._supports_nvarchar_max = True  # type: ignore[attr-defined]

    def type_variants(self) -> dict[str, TypeEngine[Any]]:
        # VARBINARY(max) and NVARCHAR(max): SQLAlchemy's LargeBinary/Text are the
        # deprecated IMAGE/NTEXT here.
        return {"blob": mssql.VARBINARY(), "text": mssql.NVARCHAR()}  # type: ignore[no-untyped-call]


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


def _literal(text_: str) -> str:
    """``text_`` as a T-SQL Unicode string literal."""
    return "N'" + text_.replace("'", "''") + "'"


def _batch(*statements: str) -> str:
    """One T-SQL batch: no row counts (so an error is the batch's first result)."""
    return ";\n".join(["SET NOCOUNT ON", *statements])


def _run(sql: str) -> list[str]:
    """Run the T-SQL text expression ``sql`` (EXEC takes only literals and variables)."""
    return [f"SET @celery_sa_sql = {sql}", "EXEC sp_executesql @celery_sa_sql"]


def _restart_after_ids(table: str, identifier: str, start: str = "0") -> list[str]:
    """Declare ``@celery_sa_restart``: after the highest id of ``table``, and at ``start``
    + 1 at least (ids from a sequence's minimum may be there), read when the batch runs;
    and ``@celery_sa_sql`` for the statement that uses it."""
    return [
        "DECLARE @celery_sa_sql NVARCHAR(MAX)",
        f"DECLARE @celery_sa_restart BIGINT = {start}",
        f"SELECT @celery_sa_restart = CASE WHEN MAX({identifier}) > @celery_sa_restart "
        f"THEN MAX({identifier}) ELSE @celery_sa_restart END + 1 FROM {table}",
    ]


class RebuildSequenceAsBigint(ExecutableDDLElement):
    """Make an INT sequence BIGINT, handing out after the ids of ``table``: ALTER SEQUENCE
    cannot change a type, so it is dropped and made again, in one transaction."""

    def __init__(self, sequence: SequenceSchema, table: Table) -> None:
        self.sequence = sequence
        self.table = table


@compiles(RebuildSequenceAsBigint, "mssql")
def _rebuild_sequence_as_bigint(element: RebuildSequenceAsBigint, compiler: Any, **kw: Any) -> str:
    preparer = compiler.preparer
    sequence = preparer.format_sequence(element.sequence)
    next_value = (
        "(SELECT CAST(current_value AS BIGINT) FROM sys.sequences "
        f"WHERE object_id = OBJECT_ID({_literal(sequence)}))"
    )
    return _batch(
        "SET XACT_ABORT ON",
        "BEGIN TRANSACTION",
        *_restart_after_ids(preparer.format_table(element.table), preparer.quote("id"), next_value),
        f"DROP SEQUENCE {sequence}",
        *_run(
            f"{_literal(f'CREATE SEQUENCE {sequence} AS BIGINT START WITH ')} "
            "+ CAST(@celery_sa_restart AS NVARCHAR(20))"
        ),
        "COMMIT TRANSACTION",
    )


class WidenKey(ExecutableDDLElement):
    """Make ``table``'s id BIGINT: its primary key dropped (found by its real name when the
    batch runs), the column altered (an IDENTITY column copied into a plain one) and the key
    made again by the same name and kind, in one transaction. The batch refuses a table
    whose id is not what it was planned for (``identity``) or that has no key."""

    def __init__(self, table: Table, *, identity: bool) -> None:
        self.table = table
        self.identity = identity


@compiles(WidenKey, "mssql")
def _widen_key(element: WidenKey, compiler: Any, **kw: Any) -> str:
    name = compiler.preparer.format_table(element.table)
    preparer = compiler.preparer
    identifier = preparer.quote("id")
    table = _literal(name)
    refused = _literal(
        f"celery_sa: {name}.id is "
        + ("not an IDENTITY column" if element.identity else "an IDENTITY column")
        + ", unlike the table this was planned for; nothing was changed"
    )
    pieces = [
        "SET XACT_ABORT ON",
        "DECLARE @celery_sa_pk sysname, @celery_sa_kind NVARCHAR(60), @celery_sa_sql NVARCHAR(MAX)",
        "SELECT @celery_sa_pk = k.name, @celery_sa_kind = i.type_desc "
        "FROM sys.key_constraints AS k JOIN sys.indexes AS i "
        "ON i.object_id = k.parent_object_id AND i.index_id = k.unique_index_id "
        f"WHERE k.type = 'PK' AND k.parent_object_id = OBJECT_ID({table})",
        "IF @celery_sa_pk IS NULL THROW 50000, "
        f"{_literal(f'celery_sa: {name} has no primary key; nothing was changed')}, 1",
        f"IF COLUMNPROPERTY(OBJECT_ID({table}), 'id', 'IsIdentity') = "
        f"{0 if element.identity else 1} THROW 50000, {refused}, 1",
        "BEGIN TRANSACTION",
    ]
    drop = _run(f"{_literal(f'ALTER TABLE {name} DROP CONSTRAINT ')} + QUOTENAME(@celery_sa_pk)")
    if element.identity:
        # An IDENTITY property cannot be removed: copy the ids into a plain column.
        temporary = preparer.quote(TEMPORARY_ID)
        rename = _literal(f"{name}.{temporary}")
        pieces += [
            f"ALTER TABLE {name} ADD {temporary} BIGINT NULL",
            # Through EXEC: the batch is compiled before the column exists.
            f"EXEC({_literal(f'UPDATE {name} SET {temporary} = {identifier}')})",
            *drop,
            f"ALTER TABLE {name} DROP COLUMN {identifier}",
            f"EXEC sp_rename {rename}, N'id', N'COLUMN'",
        ]
    else:
        pieces += drop
    pieces.append(f"ALTER TABLE {name} ALTER COLUMN {identifier} BIGINT NOT NULL")
    pieces += _run(
        f"{_literal(f'ALTER TABLE {name} ADD CONSTRAINT ')} + QUOTENAME(@celery_sa_pk) + "
        f"N' PRIMARY KEY ' + @celery_sa_kind + {_literal(f' ({identifier})')}"
    )
    return _batch(*pieces, "COMMIT TRANSACTION")


@compiles(SequenceAfterIds, "mssql")
def _sequence_after_ids(element: SequenceAfterIds, compiler: Any, **kw: Any) -> str:
    # ALTER SEQUENCE … RESTART WITH takes a constant only: build the statement.
    preparer = compiler.preparer
    sequence = preparer.format_sequence(element.sequence)
    table = preparer.format_table(element.table)
    return _batch(
        *_restart_after_ids(table, preparer.quote("id")),
        *_run(
            f"{_literal(f'ALTER SEQUENCE {sequence} RESTART WITH ')} "
            "+ CAST(@celery_sa_restart AS NVARCHAR(20))"
        ),
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
