"""The Django models and the SQLAlchemy tables describe the same rows: the admin reads
every column ``celery_sa_tables`` creates and Celery writes, and no other."""

from __future__ import annotations

from typing import NamedTuple

from celery.backends.database.models import Task as CeleryTask
from celery.backends.database.models import TaskSet as CeleryTaskSet
from django.db.models import Model
from sqlalchemy import Table

from celery_sa.conf import configured_tables
from celery_sa.models import GroupResult, TaskAttempt, TaskResult


class Column(NamedTuple):
    null: bool
    primary_key: bool
    unique: bool
    max_length: int | None


def django_columns(model: type[Model]) -> dict[str, Column]:
    return {
        field.column: Column(field.null, field.primary_key, field.unique, field.max_length)
        for field in model._meta.concrete_fields
    }


def sqlalchemy_columns(table: Table) -> dict[str, Column]:
    # A primary key is NOT NULL and unique in the table; Django never writes NULL into one
    # and calls it unique.
    return {
        column.name: Column(
            bool(column.nullable) and not column.primary_key,
            column.primary_key,
            bool(column.unique) or column.primary_key,
            getattr(column.type, "length", None),
        )
        for column in table.c
    }


def test_the_models_and_the_tables_declare_the_same_columns() -> None:
    tables = configured_tables()
    assert django_columns(TaskResult) == sqlalchemy_columns(tables.task)
    assert django_columns(GroupResult) == sqlalchemy_columns(tables.group)


def test_the_attempt_model_and_table_declare_the_same_columns() -> None:
    # The composite key's parts: each NOT NULL, unique only together.
    columns = sqlalchemy_columns(configured_tables().attempt)
    key = {
        name: Column(False, False, False, columns[name].max_length)
        for name in ("task_id", "attempt")
    }
    assert django_columns(TaskAttempt) == columns | key


def test_the_models_read_only_columns_celerys_own_models_have_and_celery_sas() -> None:
    # date_started and date_sent are celery_sa's own (its backend writes them); children
    # and stamps came with Celery 5.7, and celery_sa's tables have them whatever Celery writes.
    celerys = {c.name for c in CeleryTask.__table__.c}
    assert set(django_columns(TaskResult)) == celerys | {
        "date_started",
        "date_sent",
        "children",
        "stamps",
    }
    assert set(django_columns(GroupResult)) == {c.name for c in CeleryTaskSet.__table__.c}
