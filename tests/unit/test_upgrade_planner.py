"""The upgrade planner without a database: from the tables a Celery version created (the
offline starting points of ``celery_sa_tables sql --from``) and from hand-made states of
live tables, the problems it names and the statements it compiles, per database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from celery_sa.sql.schema import SEQUENCES, ResultTables, result_tables
from celery_sa.sql.state import ColumnState, DatabaseState, IndexState, SequenceState, TableState
from celery_sa.sql.vendors import offline_dialect
from celery_sa.tables.origins import origin_state, starting_point
from celery_sa.tables.upgrade import TablePlan, plan_upgrade

TABLES = result_tables({"task": "celery_taskmeta", "group": "celery_tasksetmeta"}, {})
INTEGER_ID = "column id is INTEGER: ids stop at 2,147,483,647; widen it to BIGINT"
BLOB_RESULT = "column result is BLOB: values stop at 64 KB; widen it to LONGBLOB"
NEW_INDEXES = [
    "index on (name, date_done) is missing",
    "index on (status, date_done, name) is missing",
]


def plans(state: DatabaseState, tables: ResultTables = TABLES) -> dict[str, TablePlan]:
    return {plan.key: plan for plan in plan_upgrade(state, tables)}


def from_celery(dialect: str, version: str, sqlalchemy: str | None = None) -> dict[str, TablePlan]:
    """The plans for the tables Celery ``version`` created on ``dialect``."""
    point = starting_point(version, sqlalchemy)
    return plans(origin_state(point, offline_dialect(dialect), TABLES))


def problems(plan: TablePlan) -> list[str]:
    return [problem.text for problem in plan.problems]


def sql(plan: TablePlan, dialect: str) -> list[str]:
    compiled = offline_dialect(dialect)
    return [str(statement.compile(dialect=compiled)).strip() for statement in plan.statements]


def as_created(dialect: str) -> DatabaseState:
    """The tables exactly as ``celery_sa_tables create`` makes them, the sequences' positions
    not known."""
    state = DatabaseState(offline_dialect(dialect))
    for key, table in {**TABLES.by_key(), "chord": TABLES.chord}.items():
        columns = {c.name: ColumnState(c.type, nullable=bool(c.nullable)) for c in table.columns}
        indexes = [IndexState(i.name, tuple(i.columns.keys())) for i in table.indexes]
        if key in SEQUENCES:
            unique = "task_id" if key == "task" else "taskset_id"
            indexes.append(IndexState(None, (unique,), unique=True))
        state.tables[table.fullname] = TableState(columns=columns, indexes=tuple(indexes))
        if key in SEQUENCES and state.dialect.supports_sequences:
            state.sequences[(None, SEQUENCES[key])] = SequenceState()
    for made_whole in (TABLES.part, TABLES.attempt, TABLES.member):
        state.tables[made_whole.fullname] = TableState(columns={})
    return state


def changed_task_table(state: DatabaseState, **changes: object) -> DatabaseState:
    found = state.tables[TABLES.task.fullname]
    state.tables[TABLES.task.fullname] = replace(found, **changes)  # type: ignore[arg-type]
    return state


# --- from the tables of a Celery version --------------------------------------------------


def test_mariadb_tables_of_celery_4_keep_auto_increment_and_get_their_sequences() -> None:
    group = from_celery("mariadb", "4.2")["group"]
    assert problems(group) == [
        INTEGER_ID,
        BLOB_RESULT,
        "index on (date_done) is missing",
        "sequence taskset_id_sequence is missing (Celery draws ids from it on this database);"
        " create it to start at the highest id + 1",
    ]
    assert group.rewrites
    assert sql(group, "mariadb") == [
        "ALTER TABLE celery_tasksetmeta MODIFY id BIGINT NOT NULL AUTO_INCREMENT,"
        " MODIFY result LONGBLOB, ADD INDEX ix_celery_tasksetmeta_date_done (date_done),"
        " ALGORITHM=COPY, LOCK=SHARED",
        "CREATE SEQUENCE taskset_id_sequence START WITH 1",
        "SELECT COALESCE(MAX(id), 0) + 1 INTO @celery_sa_restart FROM celery_tasksetmeta;\n"
        "EXECUTE IMMEDIATE CONCAT('ALTER SEQUENCE taskset_id_sequence RESTART WITH ',"
        " @celery_sa_restart)",
    ]


def test_mariadb_tables_of_celery_5_with_sqlalchemy_1_4_have_sequences_already() -> None:
    group = from_celery("mariadb", "5.2.7")["group"]
    assert problems(group) == [INTEGER_ID, BLOB_RESULT, "index on (date_done) is missing"]
    assert sql(group, "mariadb") == [
        "ALTER TABLE celery_tasksetmeta MODIFY id BIGINT NOT NULL, MODIFY result LONGBLOB,"
        " ADD INDEX ix_celery_tasksetmeta_date_done (date_done), ALGORITHM=COPY, LOCK=SHARED"
    ]
    # The same Celery on SQLAlchemy 1.3: AUTO_INCREMENT ids, no sequences.
    old = from_celery("mariadb", "5.2.7", "1.3")["group"]
    assert sql(old, "mariadb")[0].startswith(
        "ALTER TABLE celery_tasksetmeta MODIFY id BIGINT NOT NULL AUTO_INCREMENT,"
    )
    assert sql(old, "mariadb")[1] == "CREATE SEQUENCE taskset_id_sequence START WITH 1"


def test_mariadb_task_table_of_celery_5_7_is_widened_in_one_copy() -> None:
    task = from_celery("mariadb", "5.7.0")["task"]
    assert problems(task) == [
        "column date_started is missing",
        "column date_sent is missing",
        INTEGER_ID,
        BLOB_RESULT,
        # Only gains precision: done because the table is copied anyway.
        "column date_done keeps whole seconds; make it DATETIME(6) while the table is copied"
        " anyway",
        "column traceback is TEXT: values stop at 64 KB; widen it to LONGTEXT",
        "column children is BLOB: values stop at 64 KB; widen it to LONGBLOB",
        "column args is BLOB: values stop at 64 KB; widen it to LONGBLOB",
        "column kwargs is BLOB: values stop at 64 KB; widen it to LONGBLOB",
        "column stamps is BLOB: values stop at 64 KB; widen it to LONGBLOB",
        *NEW_INDEXES,
    ]
    assert [problem.rewrites for problem in task.problems] == [False] * 2 + [True] * 8 + [False] * 2
    assert sql(task, "mariadb") == [
        "ALTER TABLE celery_taskmeta MODIFY id BIGINT NOT NULL, MODIFY result LONGBLOB,"
        " MODIFY date_done DATETIME(6), MODIFY traceback LONGTEXT, MODIFY children LONGBLOB,"
        " MODIFY args LONGBLOB, MODIFY kwargs LONGBLOB, MODIFY stamps LONGBLOB,"
        " ADD COLUMN date_started DATETIME(6), ADD COLUMN date_sent DATETIME(6),"
        " ADD INDEX ix_celery_taskmeta_name_date_done (name, date_done),"
        " ADD INDEX ix_celery_taskmeta_status_date_done_name (status, date_done, name),"
        " ALGORITHM=COPY, LOCK=SHARED"
    ]


def test_postgresql_tables_of_celery_5_7_get_a_column_a_bigint_and_concurrent_indexes() -> None:
    planned = from_celery("postgresql", "5.7")
    task, group = planned["task"], planned["group"]
    assert problems(task) == [
        "column date_started is missing",
        "column date_sent is missing",
        INTEGER_ID,
        *NEW_INDEXES,
    ]
    assert sql(task, "postgresql") == [
        "ALTER TABLE celery_taskmeta ADD COLUMN date_started TIMESTAMP WITHOUT TIME ZONE,"
        " ADD COLUMN date_sent TIMESTAMP WITHOUT TIME ZONE, ALTER COLUMN id TYPE BIGINT",
        "CREATE INDEX CONCURRENTLY ix_celery_taskmeta_name_date_done"
        " ON celery_taskmeta (name, date_done)",
        "CREATE INDEX CONCURRENTLY ix_celery_taskmeta_status_date_done_name"
        " ON celery_taskmeta (status, date_done, name)",
    ]
    assert problems(group) == [INTEGER_ID]
    assert sql(group, "postgresql") == [
        "ALTER TABLE celery_tasksetmeta ALTER COLUMN id TYPE BIGINT"
    ]


def test_sqlite_tables_of_celery_4_get_columns_one_by_one_and_no_rewrite() -> None:
    task = from_celery("sqlite", "4.4")["task"]
    added = ["children", "stamps", "date_started", "date_sent"]
    assert problems(task) == [f"column {name} is missing" for name in added] + [
        "index on (date_done) is missing",
        *NEW_INDEXES,
    ]
    assert not task.rewrites
    assert sql(task, "sqlite") == [
        "ALTER TABLE celery_taskmeta ADD COLUMN children BLOB",
        "ALTER TABLE celery_taskmeta ADD COLUMN stamps BLOB",
        "ALTER TABLE celery_taskmeta ADD COLUMN date_started DATETIME",
        "ALTER TABLE celery_taskmeta ADD COLUMN date_sent DATETIME",
        "CREATE INDEX ix_celery_taskmeta_date_done ON celery_taskmeta (date_done)",
        "CREATE INDEX ix_celery_taskmeta_name_date_done ON celery_taskmeta (name, date_done)",
        "CREATE INDEX ix_celery_taskmeta_status_date_done_name"
        " ON celery_taskmeta (status, date_done, name)",
    ]
    assert problems(from_celery("sqlite", "5.7")["group"]) == []


def test_sql_server_sequences_of_sqlalchemy_2_are_restarted_after_the_ids() -> None:
    group = from_celery("mssql", "5.7")["group"]
    assert problems(group) == [
        "sequence taskset_id_sequence may hand out ids from -9,223,372,036,854,775,808"
        " (SQLAlchemy 2 creates it without START WITH); restart it after the highest id"
    ]
    assert not group.rewrites
    [statement] = sql(group, "mssql")
    assert "FROM celery_tasksetmeta;" in statement
    assert "N'ALTER SEQUENCE taskset_id_sequence RESTART WITH '" in statement


def test_celery_does_not_make_the_chord_and_attempt_tables() -> None:
    for dialect in ("mariadb", "postgresql", "sqlite", "mssql"):
        planned = from_celery(dialect, "5.7")
        for key in ("chord", "part", "attempt"):
            assert not planned[key].exists
            assert (planned[key].problems, planned[key].statements) == ([], [])


def test_tables_are_named_as_configured() -> None:
    tables = result_tables({"task": "results", "group": "groups"}, {"task": "celery"})
    state = origin_state(starting_point("5.7"), offline_dialect("postgresql"), tables)
    planned = {plan.key: plan for plan in plan_upgrade(state, tables)}
    assert sql(planned["task"], "postgresql")[1] == (
        "CREATE INDEX CONCURRENTLY ix_results_name_date_done ON celery.results (name, date_done)"
    )
    assert sql(planned["group"], "postgresql") == ["ALTER TABLE groups ALTER COLUMN id TYPE BIGINT"]


def test_the_attempt_table_is_only_present_or_missing() -> None:
    state = as_created("postgresql")
    assert plans(state)["attempt"].exists
    del state.tables[TABLES.attempt.fullname]
    attempt = plans(state)["attempt"]
    assert not attempt.exists
    assert (attempt.problems, attempt.statements, attempt.error) == ([], [], None)
    assert [plan.key for plan in plan_upgrade(state, TABLES)] == [
        "task",
        "group",
        "chord",
        "part",
        "attempt",
        "member",
    ]


# --- from live tables ---------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["mariadb", "postgresql", "sqlite"])
def test_tables_as_create_makes_them_need_nothing(dialect: str) -> None:
    for plan in plans(as_created(dialect)).values():
        assert plan.exists
        assert (plan.error, plan.problems, plan.statements) == (None, [], [])


def test_a_table_without_celerys_columns_is_named_and_left_alone() -> None:
    state = as_created("postgresql")
    columns = dict(state.tables[TABLES.task.fullname].columns)
    del columns["status"], columns["traceback"]
    task = plans(changed_task_table(state, columns=columns))["task"]
    assert task.error == (
        "celery_taskmeta exists but is not a Celery result table (no column status, traceback)."
    )
    assert (task.problems, task.statements) == ([], [])


def test_a_chord_table_without_the_columns_of_celery_sa_02_is_named_and_left_alone() -> None:
    state = as_created("postgresql")
    found = state.tables[TABLES.chord.fullname]
    columns = {name: column for name, column in found.columns.items() if name != "chord_size"}
    state.tables[TABLES.chord.fullname] = replace(found, columns=columns)
    chord = plans(state)["chord"]
    assert chord.error == (
        "celery_sa_chord exists but is not a Celery result table (no column chord_size)."
    )
    assert (chord.problems, chord.statements) == ([], [])


def test_the_old_index_is_dropped_only_after_the_wider_one_is_built() -> None:
    state = as_created("postgresql")
    kept = [i for i in state.tables[TABLES.task.fullname].indexes if i.columns[:1] != ("status",)]
    old = IndexState("ix_celery_taskmeta_status_date_done", ("status", "date_done"))
    task = plans(changed_task_table(state, indexes=(*kept, old)))["task"]
    assert problems(task) == [
        "index on (status, date_done, name) is missing",
        "index ix_celery_taskmeta_status_date_done is superseded by the index on"
        " (status, date_done, name); drop it",
    ]
    assert sql(task, "postgresql") == [
        "CREATE INDEX CONCURRENTLY ix_celery_taskmeta_status_date_done_name"
        " ON celery_taskmeta (status, date_done, name)",
        "DROP INDEX CONCURRENTLY ix_celery_taskmeta_status_date_done",
    ]


def test_an_index_of_that_name_on_other_columns_is_the_users_and_stays() -> None:
    state = as_created("postgresql")
    theirs = IndexState("ix_celery_taskmeta_status_date_done", ("status", "worker"))
    indexes = (*state.tables[TABLES.task.fullname].indexes, theirs)
    task = plans(changed_task_table(state, indexes=indexes))["task"]
    assert (task.problems, task.statements) == ([], [])


def test_an_interrupted_index_build_is_dropped_and_built_again() -> None:
    state = as_created("postgresql")
    indexes = tuple(
        replace(index, valid=False) if index.name == "ix_celery_taskmeta_name_date_done" else index
        for index in state.tables[TABLES.task.fullname].indexes
    )
    task = plans(changed_task_table(state, indexes=indexes))["task"]
    assert problems(task) == [
        "index ix_celery_taskmeta_name_date_done is invalid (an interrupted build); build it again"
    ]
    assert sql(task, "postgresql") == [
        "DROP INDEX CONCURRENTLY IF EXISTS ix_celery_taskmeta_name_date_done",
        "CREATE INDEX CONCURRENTLY ix_celery_taskmeta_name_date_done"
        " ON celery_taskmeta (name, date_done)",
    ]


@pytest.mark.parametrize(
    ("sequence", "max_id", "expected", "statements"),
    [
        pytest.param(
            SequenceState(next_value=5),
            1000,
            [
                "sequence task_id_sequence would hand out 5, but ids up to 1,000 are taken;"
                " restart it at 1,001"
            ],
            ["ALTER SEQUENCE task_id_sequence RESTART WITH 1001"],
            id="behind-the-ids",
        ),
        pytest.param(SequenceState(next_value=1001), 1000, [], [], id="ahead-of-the-ids"),
        pytest.param(
            SequenceState(bigint=False),
            None,
            ["sequence task_id_sequence is INTEGER; widen it to BIGINT"],
            ["ALTER SEQUENCE task_id_sequence AS BIGINT"],
            id="integer",
        ),
        pytest.param(
            None,
            41,
            [
                "sequence task_id_sequence is missing (Celery draws ids from it on this database);"
                " create it to start at 42"
            ],
            ["CREATE SEQUENCE task_id_sequence START WITH 42"],
            id="missing",
        ),
    ],
)
def test_a_sequence_is_put_after_the_highest_id_and_made_bigint(
    sequence: SequenceState | None, max_id: int | None, expected: list[str], statements: list[str]
) -> None:
    state = changed_task_table(as_created("postgresql"), max_id=max_id)
    del state.sequences[(None, "task_id_sequence")]
    if sequence is not None:
        state.sequences[(None, "task_id_sequence")] = sequence
    task = plans(state)["task"]
    assert problems(task) == expected
    assert sql(task, "postgresql") == statements


def test_a_column_that_only_gains_precision_alone_is_no_reason_to_copy_a_table() -> None:
    state = as_created("mariadb")
    columns = dict(state.tables[TABLES.task.fullname].columns)
    columns["date_done"] = ColumnState(TABLES.task.c.date_done.type.__class__())
    task = plans(changed_task_table(state, columns=columns))["task"]
    assert (task.problems, task.statements) == ([], [])
