"""MySQL and MariaDB: the SQL celery_sa runs there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Connection, Table, case, text
from sqlalchemy import Sequence as SequenceSchema
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Executable
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.sql.visitors import InternalTraversal, iterate
from sqlalchemy.types import TypeEngine

from celery_sa.sql.ddl import AlterTable, SequenceAfterIds
from celery_sa.sql.text import Message, gettext_noop
from celery_sa.sql.vendors.base import (
    DDLRules,
    Execute,
    Introspection,
    Keep,
    Row,
    Vendor,
    Writes,
)

if TYPE_CHECKING:
    from celery_sa.sql.state import ColumnState

# Types that hold less than Celery may write: by name, their limit and the safe type.
LIMITS: dict[str, tuple[str, str]] = {
    "TINYBLOB": ("255 bytes", "LONGBLOB"),
    "BLOB": ("64 KB", "LONGBLOB"),
    "MEDIUMBLOB": ("16 MB", "LONGBLOB"),
    "TINYTEXT": ("255 bytes", "LONGTEXT"),
    "TEXT": ("64 KB", "LONGTEXT"),
    "MEDIUMTEXT": ("16 MB", "LONGTEXT"),
}
# Changing a type copies the table (reads go on, writes wait); adding columns and indexes
# does not.
COPY = "ALGORITHM=COPY, LOCK=SHARED"
IN_PLACE = "ALGORITHM=INPLACE, LOCK=NONE"


class MySQLDDL(DDLRules):
    script_advice = gettext_noop(
        "Run it with the mysql client, which stops at the first error (without --force)."
    )
    rewrite_note = gettext_noop(
        "It is copied (ALGORITHM=COPY, LOCK=SHARED): reads go on, Celery's writes wait."
    )

    def too_narrow(self, live: ColumnState, column: Column[Any]) -> Message | None:
        # The name alone: a live TEXT may add its collation.
        name = self.vendor.type_name(live.type).split()[0]
        if name in LIMITS:
            limit, target = LIMITS[name]
            return Message(
                # Translators: column is a column name, type and target database types.
                gettext_noop(
                    "column %(column)s is %(type)s: values stop at %(limit)s; widen it to "
                    "%(target)s"
                ),
                {"column": column.name, "type": name, "limit": limit, "target": target},
            )
        return super().too_narrow(live, column)

    def less_precise(self, live: ColumnState, column: Column[Any]) -> Message | None:
        wanted = self.vendor.type_name(column.type)
        if wanted == "DATETIME(6)" and self.vendor.type_name(live.type) == "DATETIME":
            return Message(
                gettext_noop(
                    "column %(column)s keeps whole seconds; make it DATETIME(6) while the "
                    "table is copied anyway"
                ),
                {"column": column.name},
            )
        return None

    def alter_statements(self, change: AlterTable) -> list[ExecutableDDLElement]:
        if not (change.add or change.widen or change.indexes):
            return []
        # One statement, so the table is copied at most once.
        change.mysql_online = COPY if change.widen else IN_PLACE
        return [change]


class MySQLIntrospection(Introspection):
    def estimate_rows(self, execute: Execute, schema: str | None, table: str) -> int | None:
        value = execute(
            "SELECT TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s",
            [schema, table],
        )
        return None if value is None else int(value)

    def next_sequence_value(self, connection: Connection, sequence: SequenceSchema) -> int | None:
        qualified = self.qualified(connection, sequence.name, sequence.schema)
        return int(
            connection.execute(text(f"SELECT next_not_cached_value FROM {qualified}")).scalar_one()
        )


class MySQLWrites(Writes):
    def upsert(self, table: Table, values: Row, key: str, keep: Keep = None) -> Executable:
        statement = mysql.insert(table).values(values)
        sequence = table.c.id.default if "id" in table.c else None
        if "id" not in values and isinstance(sequence, SequenceSchema):
            # In the statement, not fetched by a SELECT nextval() before it as SQLAlchemy
            # does on MariaDB: one round trip per result.
            statement = statement.values(id=NextId(sequence))
        names = [name for name in values if name != key]
        # ON DUPLICATE KEY UPDATE has no WHERE: each assignment keeps the old value while
        # ``keep`` holds. MySQL assigns left to right and later ones see earlier results, so
        # the columns ``keep`` reads go last.
        read = (
            {e.name for e in iterate(keep) if isinstance(e, Column)} if keep is not None else set()
        )
        names.sort(key=lambda name: name in read)
        update = [
            (
                name,
                statement.inserted[name]
                if keep is None
                else case((keep, table.c[name]), else_=statement.inserted[name]),
            )
            for name in names
        ]
        return statement.on_duplicate_key_update(update)

    def insert_missing(self, table: Table, values: Row) -> Executable:
        # Not INSERT IGNORE, which would also turn other errors into warnings.
        first = table.primary_key.columns[0]
        return mysql.insert(table).values(values).on_duplicate_key_update({first.name: first})


class MySQL(Vendor):
    names = ("mysql", "mariadb")
    old_sqlalchemy_sequences = False  # MariaDB's came with SQLAlchemy 1.4
    auto_increment_ids = True
    ddl_class = MySQLDDL
    introspection_class = MySQLIntrospection
    writes_class = MySQLWrites

    def assume_server(self, dialect: Dialect, name: str) -> None:
        if name == "mariadb":
            # A MariaDB that has sequences (10.3+).
            dialect.server_version_info = (10, 11)
            dialect._set_mariadb(True, (10, 11))  # type: ignore[attr-defined]
            dialect.supports_sequences = True

    def type_variants(self) -> dict[str, TypeEngine[Any]]:
        # DATETIME keeps whole seconds: runtimes need microseconds, as elsewhere.
        return {"blob": mysql.LONGBLOB(), "text": mysql.LONGTEXT(), "time": mysql.DATETIME(fsp=6)}


@compiles(AlterTable, "mysql")
@compiles(AlterTable, "mariadb")
def _alter_table(element: AlterTable, compiler: Any, **kw: Any) -> str:
    # Every change in one statement, with the ALGORITHM/LOCK it may use.
    preparer = compiler.preparer
    clauses = []
    for column in element.widen:
        spec = compiler.get_column_specification(column)
        if column.primary_key and element.keep_auto_increment and "AUTO_INCREMENT" not in spec:
            spec += " AUTO_INCREMENT"
        clauses.append(f"MODIFY {spec}")
    clauses += [f"ADD COLUMN {compiler.get_column_specification(c)}" for c in element.add]
    for index in element.indexes:
        columns = ", ".join(preparer.quote(c.name) for c in index.columns)
        clauses.append(f"ADD INDEX {preparer.format_index(index)} ({columns})")
    if element.mysql_online:
        clauses.append(element.mysql_online)
    return f"ALTER TABLE {preparer.format_table(element.table)} {', '.join(clauses)}"


@compiles(SequenceAfterIds, "mariadb")
@compiles(SequenceAfterIds, "mysql")
def _sequence_after_ids(element: SequenceAfterIds, compiler: Any, **kw: Any) -> str:
    # Neither SETVAL() nor EXECUTE IMMEDIATE takes a subquery: a session variable carries it.
    preparer = compiler.preparer
    sequence = preparer.format_sequence(element.sequence).replace("'", "''")
    return (
        f"SELECT COALESCE(MAX({preparer.quote('id')}), 0) + 1 INTO @celery_sa_restart "
        f"FROM {preparer.format_table(element.table)};\n"
        f"EXECUTE IMMEDIATE CONCAT('ALTER SEQUENCE {sequence} RESTART WITH ', @celery_sa_restart)"
    )


class NextId(ColumnElement[int]):
    """The next id of a table whose id has a sequence: ``nextval(seq)`` on MariaDB, where
    the sequence exists; NULL, so AUTO_INCREMENT assigns it, on MySQL."""

    # Cacheable by the sequence's name: the upsert is compiled once per process.
    inherit_cache = True
    _traverse_internals = [
        ("name", InternalTraversal.dp_string),
        ("schema", InternalTraversal.dp_string),
    ]

    def __init__(self, sequence: SequenceSchema) -> None:
        self.name = sequence.name
        self.schema = sequence.schema


@compiles(NextId, "mysql")
@compiles(NextId, "mariadb")
def _next_id(element: NextId, compiler: Any, **kw: Any) -> str:
    if compiler.dialect.supports_sequences:
        sequence = SequenceSchema(element.name, schema=element.schema)
        return str(compiler.process(sequence.next_value(), **kw))
    return "NULL"
