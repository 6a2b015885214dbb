"""Upgrade scripts a DBA runs without celery_sa (``celery_sa_tables sql --from VERSION``) and
the SQL Server upgrade: the tables each Celery version created are the starting point.

On MariaDB, PostgreSQL and SQLite each script runs for real on the tables that Celery version
made (``tests/tables/legacy/``) and ends where ``upgrade`` and ``create`` end. SQL Server cannot run
here: its tables are Celery's own models compiled by SQLAlchemy's SQL Server dialect (the
``.mssql.sql`` fixtures), and the T-SQL planned for them is checked statement by statement.
"""

from __future__ import annotations

import copy
import re
from io import StringIO
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from sqlalchemy import create_engine
from sqlalchemy.dialects import mssql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeEngine

from celery_sa.conf import configured_tables
from celery_sa.db import result_database
from celery_sa.management.commands import celery_sa_tables
from celery_sa.sql import vendors
from celery_sa.sql.live import read_state
from celery_sa.sql.state import (
    ColumnState,
    DatabaseState,
    IndexState,
    SequenceState,
    TableState,
)
from celery_sa.sql.vendors import offline_dialect
from celery_sa.sql.vendors.mssql import WidenKey
from celery_sa.tables import execute, scripts
from celery_sa.tables.origins import origin_state, starting_point
from celery_sa.tables.upgrade import plan_upgrade
from tests.support.databases import ResultDB, drop_result_tables, result_db_param
from tests.support.tables import LEGACY, load_legacy, manage, snapshot

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

VERSIONS = ["4.2.2", "4.4.7", "5.2.7", "5.5.3", "5.6.3", "5.7.0"]
"""Celery versions whose tables ``tests/tables/legacy/`` holds (SQLAlchemy 1.3 made 4.x's)."""
SCRIPT_DIALECT = {"mysqlclient": "mariadb", "postgresql": "postgresql", "sqlite": "sqlite"}


def sql_script(dialect: str, version: str) -> str:
    out = StringIO()
    call_command("celery_sa_tables", "sql", "--dialect", dialect, "--from", version, stdout=out)
    return out.getvalue()


def statements_of(script: str) -> list[str]:
    """The statements of a printed script, comments left out, in order: SQL Server's
    batches as they end at ``GO``, one statement each elsewhere."""
    body = "\n".join(line for line in script.splitlines() if not line.startswith("-- "))
    end = r";\nGO(?:\n|$)" if re.search(r"^GO$", body, re.MULTILINE) else r";\s*(?:\n|$)"
    return [s.strip() for s in re.split(end, body) if s.strip()]


def live_state() -> DatabaseState:
    engine = create_engine(result_database().url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return read_state(connection, configured_tables())
    finally:
        engine.dispose()


def type_key(state: DatabaseState, type_: TypeEngine[Any]) -> str:
    """A type as the database writes it, without what reflection adds to the same type
    (MariaDB's display widths, collations)."""
    name = vendors.get(state.dialect.name).type_name(type_).split(" COLLATE ")[0]
    return re.sub(r"^(INTEGER|BIGINT)\(\d+\)", r"\1", name)


def shape(state: DatabaseState, *, auto_increment: bool = True) -> dict[str, Any]:
    """What the upgrade must get right, comparable between a live database and a model:
    each table's columns (type, nullability, AUTO_INCREMENT), its indexes by columns and
    uniqueness, and the sequences."""
    tables: dict[str, Any] = {}
    for table in configured_tables().all():
        found = state.table(table)
        tables[table.name] = found and {
            "columns": {
                name: (
                    type_key(state, column.type),
                    column.nullable,
                    column.auto_increment and auto_increment,
                    column.identity,
                )
                for name, column in found.columns.items()
            },
            "indexes": sorted({(index.columns, index.unique) for index in found.indexes}),
        }
    return {"tables": tables, "sequences": sorted(name for _, name in state.sequences)}


def run_script(script: str) -> None:
    """Run each statement on its own, in autocommit, as psql or the mysql client would."""
    engine = create_engine(result_database().url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements_of(script):
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


# --- MariaDB, PostgreSQL and SQLite: the scripts run for real --------------------------


@pytest.mark.parametrize(
    ("result_db", "version"),
    [result_db_param(name, version) for name in SCRIPT_DIALECT for version in VERSIONS],
    indirect=["result_db"],
)
@pytest.mark.slow
def test_the_script_from_a_celery_version_ends_where_upgrade_and_create_end(
    result_db: ResultDB, version: str
) -> None:
    dialect = SCRIPT_DIALECT[result_db.name]
    point = starting_point(version)
    # The starting point celery_sa assumes is exactly the tables that Celery made.
    load_legacy(result_db, version)
    made = live_state()
    assumed = origin_state(point, offline_dialect(dialect), configured_tables())
    assert shape(assumed) == shape(made)
    rows = snapshot()

    run_script(sql_script(dialect, version))
    scripted = live_state()
    # What the live upgrade sees after the script: nothing to do, not even a sequence.
    assert manage("status")[0] == 0
    assert snapshot() == rows

    load_legacy(result_db, version)
    assert manage("upgrade")[0] == 0
    assert shape(live_state()) == shape(scripted)

    drop_result_tables()
    assert manage("create")[0] == 0
    # The same, but a table Celery numbered by AUTO_INCREMENT keeps it.
    assert shape(live_state(), auto_increment=False) == shape(scripted, auto_increment=False)


def test_every_starting_point_is_named_by_the_celery_versions_it_covers() -> None:
    assert starting_point("4.2").origin.name == "4.0–4.3"
    assert starting_point("5.2.7").origin.name == "4.4–5.5"
    assert starting_point("5.6").origin.name == "5.6"
    assert starting_point("5.8.1").origin.name == "5.7+"
    assert starting_point("4.4.7").old_sqlalchemy is True
    assert starting_point("5.0").old_sqlalchemy is False
    assert starting_point("5.0", "1.3").old_sqlalchemy is True
    for wrong in ("3.1", "5", "five", "5.x"):
        with pytest.raises(ValueError, match="is not a Celery version celery_sa knows"):
            starting_point(wrong)
    with pytest.raises(CommandError, match=r"'4\.x' is not a Celery version") as raised:
        sql_script("mssql", "4.x")
    assert raised.value.returncode == celery_sa_tables.ERROR_EXIT
    with pytest.raises(CommandError, match="--sqlalchemy describes the tables of --from"):
        call_command("celery_sa_tables", "sql", "--dialect", "mssql", "--sqlalchemy", "1.3")


# --- SQL Server: Celery's own tables compiled, the T-SQL checked ------------------------

MSSQL = offline_dialect("mssql")
COLUMN = re.compile(r"^(\w+) (\w+(?:\((?:\d+|max)\))?) (NOT NULL|NULL)( IDENTITY\(1,1\))?$")


def mssql_type(spec: str) -> TypeEngine[Any]:
    """``VARBINARY(max)``, ``VARCHAR(155)``, ``INTEGER``… as SQLAlchemy reflects them."""
    name, _, length = spec.rstrip(")").partition("(")
    kind = mssql.base.ischema_names["int" if name == "INTEGER" else name.lower()]
    if not length:
        return kind()  # type: ignore[no-any-return]
    return kind(None if length == "max" else int(length))  # type: ignore[no-any-return]


def fixture_state(version: str) -> DatabaseState:
    """The tables of ``tests/tables/legacy/celery-<version>.mssql.sql`` as SQL Server would report
    them (SQLAlchemy's compiled DDL is regular enough to read back)."""
    state = DatabaseState(MSSQL)
    sql = (LEGACY / f"celery-{version}.mssql.sql").read_text()
    indexes: dict[str, list[IndexState]] = {}
    for statement in (s.strip() for s in re.split(r";\s*(?:\n|$)", sql) if s.strip()):
        if match := re.fullmatch(r"CREATE SEQUENCE (\w+)(?: AS (\w+))?.*", statement):
            bigint = match[2] in (None, "BIGINT")
            state.sequences[(None, match[1])] = SequenceState(bigint=bigint)
        elif match := re.fullmatch(r"CREATE INDEX (\w+) ON (\w+) \((\w+)\)", statement):
            indexes.setdefault(match[2], []).append(IndexState(match[1], (match[3],)))
        elif match := re.fullmatch(r"CREATE TABLE (\w+) \((.*)\)", statement, re.DOTALL):
            columns: dict[str, ColumnState] = {}
            for line in (part.strip().rstrip(",").strip() for part in match[2].splitlines()):
                if found := COLUMN.fullmatch(line):
                    columns[found[1]] = ColumnState(
                        mssql_type(found[2]),
                        nullable=found[3] == "NULL",
                        identity=bool(found[4]),
                    )
                elif unique := re.fullmatch(r"UNIQUE \((\w+)\)", line):
                    indexes.setdefault(match[1], []).append(
                        IndexState(None, (unique[1],), unique=True)
                    )
                else:
                    assert line in ("", "PRIMARY KEY (id)"), line
            state.tables[match[1]] = TableState(columns=columns)
        else:
            raise AssertionError(f"not read: {statement}")
    for name, found in state.tables.items():
        state.tables[name] = TableState(columns=found.columns, indexes=tuple(indexes.get(name, ())))
    return state


def mssql_upgrade(state: DatabaseState) -> list[str]:
    tables = configured_tables()
    plans = plan_upgrade(state, tables)
    return [execute.compiled(s, MSSQL) for plan in plans for s in plan.statements]


def key_batch(table: str, identity: bool, *change: str) -> str:
    """A batch that finds ``table``'s key (its real name and kind), refuses a table without
    one or whose id is not as planned, and makes ``change`` with the key dropped and made
    again, in one transaction."""
    refused = "not an IDENTITY column" if identity else "an IDENTITY column"
    return "SET NOCOUNT ON;\n" + ";\n".join(
        [
            "SET XACT_ABORT ON",
            "DECLARE @celery_sa_pk sysname, @celery_sa_kind NVARCHAR(60), "
            "@celery_sa_sql NVARCHAR(MAX)",
            "SELECT @celery_sa_pk = k.name, @celery_sa_kind = i.type_desc "
            "FROM sys.key_constraints AS k JOIN sys.indexes AS i "
            "ON i.object_id = k.parent_object_id AND i.index_id = k.unique_index_id "
            f"WHERE k.type = 'PK' AND k.parent_object_id = OBJECT_ID(N'{table}')",
            "IF @celery_sa_pk IS NULL THROW 50000, "
            f"N'celery_sa: {table} has no primary key; nothing was changed', 1",
            f"IF COLUMNPROPERTY(OBJECT_ID(N'{table}'), 'id', 'IsIdentity') = {int(not identity)} "
            f"THROW 50000, N'celery_sa: {table}.id is {refused}, unlike the table this was "
            "planned for; nothing was changed', 1",
            "BEGIN TRANSACTION",
            *change,
            f"SET @celery_sa_sql = N'ALTER TABLE {table} ADD CONSTRAINT ' + "
            "QUOTENAME(@celery_sa_pk) + N' PRIMARY KEY ' + @celery_sa_kind + N' (id)'",
            "EXEC sp_executesql @celery_sa_sql",
            "COMMIT TRANSACTION",
        ]
    )


def drop_key(table: str) -> list[str]:
    return [
        f"SET @celery_sa_sql = N'ALTER TABLE {table} DROP CONSTRAINT ' + QUOTENAME(@celery_sa_pk)",
        "EXEC sp_executesql @celery_sa_sql",
    ]


def widen_key(table: str) -> str:
    """The batch that makes ``table``'s INT id BIGINT."""
    return key_batch(
        table, False, *drop_key(table), f"ALTER TABLE {table} ALTER COLUMN id BIGINT NOT NULL"
    )


def rebuild_identity(table: str) -> str:
    """The batch that makes ``table``'s IDENTITY id a plain BIGINT column, same ids."""
    return key_batch(
        table,
        True,
        f"ALTER TABLE {table} ADD celery_sa_id BIGINT NULL",
        f"EXEC(N'UPDATE {table} SET celery_sa_id = id')",
        *drop_key(table),
        f"ALTER TABLE {table} DROP COLUMN id",
        f"EXEC sp_rename N'{table}.celery_sa_id', N'id', N'COLUMN'",
        f"ALTER TABLE {table} ALTER COLUMN id BIGINT NOT NULL",
    )


def restart_after_ids(table: str, start: str = "0") -> list[str]:
    return [
        "DECLARE @celery_sa_sql NVARCHAR(MAX)",
        f"DECLARE @celery_sa_restart BIGINT = {start}",
        "SELECT @celery_sa_restart = CASE WHEN MAX(id) > @celery_sa_restart THEN MAX(id) "
        f"ELSE @celery_sa_restart END + 1 FROM {table}",
    ]


def sequence_after_ids(sequence: str, table: str) -> str:
    """The batch that restarts ``sequence`` after the highest id of ``table`` (and at 1 at
    least), read when it runs."""
    return ";\n".join(
        [
            "SET NOCOUNT ON",
            *restart_after_ids(table),
            f"SET @celery_sa_sql = N'ALTER SEQUENCE {sequence} RESTART WITH ' + "
            "CAST(@celery_sa_restart AS NVARCHAR(20))",
            "EXEC sp_executesql @celery_sa_sql",
        ]
    )


TASK_INDEXES = [
    "CREATE INDEX ix_celery_taskmeta_date_done ON celery_taskmeta (date_done)",
    "CREATE INDEX ix_celery_taskmeta_name_date_done ON celery_taskmeta (name, date_done)",
    "CREATE INDEX ix_celery_taskmeta_status_date_done_name "
    "ON celery_taskmeta (status, date_done, name)",
]
GROUP_INDEX = "CREATE INDEX ix_celery_tasksetmeta_date_done ON celery_tasksetmeta (date_done)"
TRACEBACK = "ALTER TABLE celery_taskmeta ALTER COLUMN traceback NVARCHAR(max) NULL"
EXTENDED = (
    "name VARCHAR(155) NULL, args VARBINARY(max) NULL, kwargs VARBINARY(max) NULL, "
    "worker VARCHAR(155) NULL, retries INTEGER NULL, queue VARCHAR(155) NULL, "
)
NEW_COLUMNS = "date_started DATETIME NULL, date_sent DATETIME NULL"


def made_by_sqlalchemy_13(columns: str) -> list[str]:
    """The upgrade of tables SQLAlchemy 1.3 made: IDENTITY ids, no sequences."""
    return [
        f"ALTER TABLE celery_taskmeta ADD {columns}",
        TRACEBACK,
        rebuild_identity("celery_taskmeta"),
        *TASK_INDEXES,
        "CREATE SEQUENCE task_id_sequence START WITH 1",
        sequence_after_ids("task_id_sequence", "celery_taskmeta"),
        rebuild_identity("celery_tasksetmeta"),
        GROUP_INDEX,
        "CREATE SEQUENCE taskset_id_sequence START WITH 1",
        sequence_after_ids("taskset_id_sequence", "celery_tasksetmeta"),
    ]


# SQLAlchemy 1.4 and later: INT ids fed by BIGINT sequences (the overflow), which SQLAlchemy 2
# creates without START WITH: SQL Server starts them at -2**63.
MADE_BY_SQLALCHEMY_14 = [
    f"ALTER TABLE celery_taskmeta ADD children VARBINARY(max) NULL, stamps VARBINARY(max) NULL, "
    f"{NEW_COLUMNS}",
    TRACEBACK,
    widen_key("celery_taskmeta"),
    *TASK_INDEXES,
    sequence_after_ids("task_id_sequence", "celery_taskmeta"),
    widen_key("celery_tasksetmeta"),
    GROUP_INDEX,
    sequence_after_ids("taskset_id_sequence", "celery_tasksetmeta"),
]
SQL_SERVER_UPGRADES = {
    # Before 4.4 without the extended columns.
    "4.2.2": made_by_sqlalchemy_13(
        f"children VARBINARY(max) NULL, {EXTENDED}stamps VARBINARY(max) NULL, {NEW_COLUMNS}"
    ),
    "4.4.7": made_by_sqlalchemy_13(
        f"children VARBINARY(max) NULL, stamps VARBINARY(max) NULL, {NEW_COLUMNS}"
    ),
    "5.2.7": MADE_BY_SQLALCHEMY_14,
    "5.5.3": MADE_BY_SQLALCHEMY_14,
    # BIGINT ids and date_done indexes from 5.6 on, children and stamps from 5.7 on.
    "5.6.3": [
        "ALTER TABLE celery_taskmeta ADD children VARBINARY(max) NULL, "
        f"stamps VARBINARY(max) NULL, {NEW_COLUMNS}",
        TRACEBACK,
        *TASK_INDEXES[1:],
        sequence_after_ids("task_id_sequence", "celery_taskmeta"),
        sequence_after_ids("taskset_id_sequence", "celery_tasksetmeta"),
    ],
    "5.7.0": [
        f"ALTER TABLE celery_taskmeta ADD {NEW_COLUMNS}",
        TRACEBACK,
        *TASK_INDEXES[1:],
        sequence_after_ids("task_id_sequence", "celery_taskmeta"),
        sequence_after_ids("taskset_id_sequence", "celery_tasksetmeta"),
    ],
}


@pytest.mark.parametrize("version", VERSIONS)
def test_sql_server_tables_of_each_celery_version_get_exactly_this_t_sql(version: str) -> None:
    made = fixture_state(version)
    point = starting_point(version)
    assert shape(origin_state(point, MSSQL, configured_tables())) == shape(made)
    assert mssql_upgrade(made) == SQL_SERVER_UPGRADES[version]
    # The script prints the same, after the chord tables it creates, each batch ended by GO.
    script = sql_script("mssql", version)
    assert script.count("\nGO\n") == len(statements_of(script))
    assert (
        statements_of(script)[-len(SQL_SERVER_UPGRADES[version]) :]
        == (SQL_SERVER_UPGRADES[version])
    )


def test_upgrade_dry_run_ends_sql_server_batches_with_go_and_others_with_a_semicolon() -> None:
    tables = configured_tables()
    sql_server = plan_upgrade(fixture_state("5.5.3"), tables)
    printed = [line for plan in sql_server for line in scripts.upgrade_sql(plan, MSSQL)]
    assert printed == [f"{statement};\nGO" for statement in SQL_SERVER_UPGRADES["5.5.3"]]
    mariadb = offline_dialect("mariadb")
    maria = plan_upgrade(origin_state(starting_point("5.5.3"), mariadb, tables), tables)
    printed = [line for plan in maria for line in scripts.upgrade_sql(plan, mariadb)]
    assert printed
    assert all(line.endswith(";") and "\nGO" not in line for line in printed)


def test_a_live_sql_server_table_gets_the_same_batches_and_its_figures_read_when_they_run() -> None:
    """What ``upgrade`` plans from a live server: the types as reflected, the ids and the
    sequences' positions known; the key is still found by the batch, and the sequences are
    moved by what the batch reads (workers may write meanwhile)."""
    state = fixture_state("5.5.3")
    task, group = configured_tables().task, configured_tables().group
    found = state.tables[task.name]
    columns = found.columns | {
        "result": ColumnState(mssql.IMAGE()),  # type: ignore[no-untyped-call]
        "traceback": ColumnState(mssql.VARCHAR(None, collation="SQL_Latin1_General_CP1_CI_AS")),
        "args": ColumnState(mssql.VARBINARY(8000)),  # type: ignore[no-untyped-call]
        "kwargs": ColumnState(mssql.VARBINARY(None)),  # type: ignore[no-untyped-call]
    }
    state.tables[task.name] = TableState(
        columns=columns, indexes=found.indexes, rows=12, max_id=2_000_000_000
    )
    bigint_id = ColumnState(mssql.BIGINT(), nullable=False)  # type: ignore[no-untyped-call]
    state.tables[group.name] = TableState(
        columns=state.tables[group.name].columns | {"id": bigint_id},
        indexes=(IndexState("ix_celery_tasksetmeta_date_done", ("date_done",)),),
        max_id=-(2**63) + 41,
    )
    state.sequences[(None, "task_id_sequence")] = SequenceState(next_value=1_999_999_990)
    state.sequences[(None, "taskset_id_sequence")] = SequenceState(
        next_value=-(2**63) + 42, bigint=False
    )
    plans = {plan.key: plan for plan in plan_upgrade(state, configured_tables())}
    assert [problem.text for problem in plans["task"].problems] == [
        "column children is missing",
        "column stamps is missing",
        "column date_started is missing",
        "column date_sent is missing",
        "column id is INTEGER: ids stop at 2,147,483,647; widen it to BIGINT",
        "column result is IMAGE; make it VARBINARY(max)",
        "column traceback is VARCHAR(max); make it NVARCHAR(max)",
        "column args is VARBINARY(8000); make it VARBINARY(max)",
        "index on (date_done) is missing",
        "index on (name, date_done) is missing",
        "index on (status, date_done, name) is missing",
        "sequence task_id_sequence would hand out 1,999,999,990, but ids up to 2,000,000,000 "
        "are taken; restart it at 2,000,000,001",
    ]
    assert [execute.compiled(s, MSSQL) for s in plans["task"].statements] == [
        "ALTER TABLE celery_taskmeta ADD children VARBINARY(max) NULL, "
        f"stamps VARBINARY(max) NULL, {NEW_COLUMNS}",
        "ALTER TABLE celery_taskmeta ALTER COLUMN result VARBINARY(max) NULL",
        TRACEBACK,
        "ALTER TABLE celery_taskmeta ALTER COLUMN args VARBINARY(max) NULL",
        widen_key("celery_taskmeta"),
        *TASK_INDEXES,
        sequence_after_ids("task_id_sequence", "celery_taskmeta"),
    ]
    assert [problem.text for problem in plans["group"].problems] == [
        "sequence taskset_id_sequence may hand out ids from -9,223,372,036,854,775,808 "
        "(SQLAlchemy 2 creates it without START WITH); restart it after the highest id",
        "sequence taskset_id_sequence is INTEGER; widen it to BIGINT",
    ]
    # ALTER SEQUENCE cannot change a type: dropped and made again after the ids.
    widen = ";\n".join(
        [
            "SET NOCOUNT ON",
            "SET XACT_ABORT ON",
            "BEGIN TRANSACTION",
            *restart_after_ids(
                "celery_tasksetmeta",
                "(SELECT CAST(current_value AS BIGINT) FROM sys.sequences "
                "WHERE object_id = OBJECT_ID(N'taskset_id_sequence'))",
            ),
            "DROP SEQUENCE taskset_id_sequence",
            "SET @celery_sa_sql = N'CREATE SEQUENCE taskset_id_sequence AS BIGINT START WITH ' "
            "+ CAST(@celery_sa_restart AS NVARCHAR(20))",
            "EXEC sp_executesql @celery_sa_sql",
            "COMMIT TRANSACTION",
        ]
    )
    assert [execute.compiled(s, MSSQL) for s in plans["group"].statements] == [
        sequence_after_ids("taskset_id_sequence", "celery_tasksetmeta"),
        widen,
    ]


class Cursor:
    """A pyodbc cursor's part in running a batch: its results, the third one an error."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.results = 3

    def execute(self, sql: str) -> None:
        self.log.append(sql)

    def nextset(self) -> bool:
        self.results -= 1
        if self.results == 1:
            raise mssql_error("Cannot insert the value NULL into column 'id'")
        return self.results > 0

    def close(self) -> None:
        self.log.append("closed")


class StandInError(Exception):
    """pyodbc.Error's stand-in."""


def mssql_error(message: str) -> StandInError:
    return StandInError(message)


def test_a_batch_is_read_to_its_end_so_a_later_statements_error_is_raised() -> None:
    """pyodbc raises an error of a batch's later statement only when its result is read."""
    log: list[str] = []
    dialect = copy.copy(offline_dialect("mssql"))
    dialect.dbapi = SimpleNamespace(Error=StandInError)  # type: ignore[assignment]
    raw = SimpleNamespace(cursor=lambda: Cursor(log))
    connection: Any = SimpleNamespace(
        dialect=dialect, connection=SimpleNamespace(dbapi_connection=raw)
    )
    statement = WidenKey(configured_tables().task, identity=False)
    with pytest.raises(DBAPIError, match="Cannot insert the value NULL"):
        vendors.get("mssql").ddl.run_ddl(connection, statement)
    assert log == [widen_key("celery_taskmeta"), "closed"]
