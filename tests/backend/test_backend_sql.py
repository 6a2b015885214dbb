"""The statements celery_sa's backend sends, as each database's SQLAlchemy dialect compiles
them: one upsert per stored result (SQL Server's MERGE is only ever compiled here: no
server runs in the tests)."""

from __future__ import annotations

import pytest
from celery import Celery
from sqlalchemy import func

from celery_sa.conf import configured_tables
from celery_sa.sql import vendors

VALUES = {"task_id": "t1", "status": "SUCCESS", "result": b"5"}
UPSERTS = {
    "mysql": (
        "INSERT INTO celery_taskmeta (id, task_id, status, result) VALUES (NULL, %s, %s, %s) "
        "ON DUPLICATE KEY UPDATE "
        "result = CASE WHEN (coalesce(celery_taskmeta.status, %s) = %s) "
        "THEN celery_taskmeta.result ELSE VALUES(result) END, "
        "status = CASE WHEN (coalesce(celery_taskmeta.status, %s) = %s) "
        "THEN celery_taskmeta.status ELSE VALUES(status) END"
    ),
    "mariadb": (
        "INSERT INTO celery_taskmeta (id, task_id, status, result) "
        "VALUES (nextval(task_id_sequence), %s, %s, %s) "
        "ON DUPLICATE KEY UPDATE "
        "result = CASE WHEN (coalesce(celery_taskmeta.status, %s) = %s) "
        "THEN celery_taskmeta.result ELSE VALUES(result) END, "
        "status = CASE WHEN (coalesce(celery_taskmeta.status, %s) = %s) "
        "THEN celery_taskmeta.status ELSE VALUES(status) END"
    ),
    "postgresql": (
        "INSERT INTO celery_taskmeta (id, task_id, status, result) "
        "VALUES (nextval('task_id_sequence'), %(task_id)s, %(status)s, "
        "%(result)s) ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, "
        "result = excluded.result WHERE coalesce(celery_taskmeta.status, "
        "%(coalesce_1)s) != %(coalesce_2)s RETURNING celery_taskmeta.id"
    ),
    "sqlite": (
        "INSERT INTO celery_taskmeta (task_id, status, result) VALUES (?, ?, ?) "
        "ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, "
        "result = excluded.result WHERE coalesce(celery_taskmeta.status, ?) != ?"
    ),
    "mssql": (
        "MERGE INTO celery_taskmeta WITH (HOLDLOCK) USING (SELECT ? AS task_id, ? AS status, "
        "? AS result) AS source ON celery_taskmeta.task_id = source.task_id "
        "WHEN MATCHED AND NOT (coalesce(celery_taskmeta.status, ?) = ?) "
        "THEN UPDATE SET status = source.status, result = source.result "
        "WHEN NOT MATCHED THEN INSERT (id, task_id, status, result) "
        "VALUES (NEXT VALUE FOR task_id_sequence, source.task_id, source.status, "
        "source.result);"
    ),
}
INSERT_MISSING = {
    "mysql": (
        "INSERT INTO celery_sa_chord_part (group_id, task_id) VALUES (%s, %s) "
        "ON DUPLICATE KEY UPDATE group_id = celery_sa_chord_part.group_id"
    ),
    "postgresql": (
        "INSERT INTO celery_sa_chord_part (group_id, task_id) "
        "VALUES (%(group_id)s, %(task_id)s) ON CONFLICT DO NOTHING"
    ),
    "sqlite": (
        "INSERT INTO celery_sa_chord_part (group_id, task_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
    ),
    "mssql": (
        "MERGE INTO celery_sa_chord_part WITH (HOLDLOCK) USING (SELECT ? AS group_id, "
        "? AS task_id) AS source ON celery_sa_chord_part.group_id = source.group_id "
        "AND celery_sa_chord_part.task_id = source.task_id "
        "WHEN NOT MATCHED THEN INSERT (group_id, task_id) "
        "VALUES (source.group_id, source.task_id);"
    ),
}


def compiled(statement: object, name: str) -> str:
    dialect = vendors.get(name).offline_dialect(name)
    if name == "mariadb":
        dialect.supports_sequences = True  # as on a MariaDB 10.3+ server
    if name == "mssql":
        dialect.paramstyle = "qmark"  # pyodbc's
    sql = " ".join(str(statement.compile(dialect=dialect)).split())  # type: ignore[attr-defined]
    # SQLAlchemy 2.1 casts psycopg's string parameters (::VARCHAR), 2.0 does not.
    return sql.replace("::VARCHAR", "")


@pytest.mark.parametrize("name", sorted(UPSERTS))
def test_a_result_is_stored_with_one_statement(name: str) -> None:
    writes = vendors.get(name).writes
    task = configured_tables().task
    keep = func.coalesce(task.c.status, "") == "SUCCESS"
    assert compiled(writes.upsert(task, VALUES, "task_id", keep), name) == UPSERTS[name]


@pytest.mark.parametrize("name", sorted(INSERT_MISSING))
def test_a_chord_part_is_recorded_once(name: str) -> None:
    writes = vendors.get(name).writes
    part = configured_tables().part
    statement = writes.insert_missing(part, {"group_id": "g", "task_id": "t"})
    assert compiled(statement, name) == INSERT_MISSING[name]


def test_an_unsupported_database_is_refused_by_name_never_with_its_password() -> None:
    # Not the current app: later tests' tasks would find this backend.
    app = Celery(
        "refused",
        backend="celery_sa+oracle://scott:S3CRET@db.example.com/orcl",
        set_as_current=False,
    )
    # The store is made on first use (Celery before 5.7 uses it while making the backend).
    with pytest.raises(LookupError) as refused:
        app.backend.store  # noqa: B018
    app.close()
    assert str(refused.value) == "celery_sa does not support the database 'oracle'"
