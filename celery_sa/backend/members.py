"""The tasks of each group the backend saves, one row each in ``celery_sa_group_member``,
in the group's order: what lets the admin filter groups by their tasks' states with indexed
joins. Written before the group's own row, so a group that can be read has its members."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from celery.result import GroupResult
from sqlalchemy import Connection, bindparam, select
from sqlalchemy import delete as sql_delete

from celery_sa.backend.store import ResultStore

# The rows one INSERT carries at most (parameters: 4 each, under every database's limit).
BATCH = 500


def leaf_ids(result: Any) -> Iterator[str]:
    """The task ids of a group, in order; a group nested in it gives its own tasks."""
    for child in getattr(result, "results", None) or ():
        if isinstance(child, GroupResult):
            yield from leaf_ids(child)
        elif getattr(child, "id", None):
            yield str(child.id)


def save_members(store: ResultStore, group_id: str, result: Any) -> None:
    """Write the member rows of ``result`` (each once: a group saved again adds nothing)."""
    with store.engine.begin() as connection:
        write_members(connection, store, group_id, result)


def write_members(connection: Connection, store: ResultStore, group_id: str, result: Any) -> None:
    """:func:`save_members` in the caller's transaction."""
    saved = datetime.now(UTC).replace(tzinfo=None)
    ids = list(dict.fromkeys(leaf_ids(result)))
    if not ids:
        return
    rows = [
        {"group_id": group_id, "task_id": task_id, "group_index": index, "date_done": saved}
        for index, task_id in enumerate(ids)
    ]
    member = store.tables.member
    values = {name: bindparam(name, type_=member.c[name].type) for name in rows[0]}
    statement = store.vendor.writes.insert_missing(member, values)
    for start in range(0, len(rows), BATCH):
        connection.execute(statement, rows[start : start + BATCH])


def delete_members(store: ResultStore, group_id: str) -> None:
    member = store.tables.member
    with store.engine.begin() as connection:
        connection.execute(sql_delete(member).where(member.c.group_id == group_id))


def group_saved(store: ResultStore, group_id: str) -> bool:
    """Whether the group table has a row for ``group_id``."""
    group = store.tables.group
    with store.engine.connect() as connection:
        found = connection.execute(select(group.c.id).where(group.c.taskset_id == group_id)).first()
    return found is not None
