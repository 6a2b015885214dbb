"""One source of truth: the result backend URL decides which alias the models read."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from django.test import override_settings

from celery_sa.db import result_alias, result_database
from celery_sa.db.url import sqlalchemy_url
from celery_sa.models import GroupResult, TaskResult, configure_tables
from celery_sa.routers import ResultDatabaseRouter
from celery_sa.sql import vendors

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
router = ResultDatabaseRouter()


def test_a_separate_result_database_gets_an_alias_of_its_own() -> None:
    database = result_database()
    assert database.alias == "celery_sa"
    assert database.config is settings.DATABASES["celery_sa"]
    # pytest-django gave it a test database, as for any alias, and a file one at that.
    assert settings.DATABASES["celery_sa"]["NAME"].endswith("test_results.sqlite3")


def test_an_alias_already_pointing_at_the_result_database_is_reused() -> None:
    default = connections["default"].settings_dict
    url = "db+" + sqlalchemy_url(default).render_as_string(hide_password=False)
    with override_settings(CELERY_RESULT_BACKEND=url):
        assert result_alias() == "default"
        assert router.db_for_read(TaskResult) == "default"
        assert router.allow_migrate("default", "auth") is None


def test_overriding_the_backend_and_back_restores_the_test_database() -> None:
    before = dict(settings.DATABASES["celery_sa"])
    with override_settings(CELERY_RESULT_BACKEND="db+postgresql+psycopg://u@db.example.com/r"):
        assert settings.DATABASES["celery_sa"]["ENGINE"] == "django.db.backends.postgresql"
    assert result_alias() == "celery_sa"
    assert settings.DATABASES["celery_sa"] == before


def test_the_router_sends_result_models_to_the_result_database_only() -> None:
    assert router.db_for_read(TaskResult) == "celery_sa"
    assert router.db_for_write(GroupResult) == "celery_sa"
    assert router.db_for_read(User) is None


def test_no_migration_runs_against_a_separate_result_database() -> None:
    assert router.allow_migrate("celery_sa", "auth") is False
    assert router.allow_migrate("celery_sa", "celery_sa") is False
    assert router.allow_migrate("default", "auth") is None
    # pytest-django ran migrate on the result test database: Django's recorder may have
    # made its bookkeeping table, but no app's table may be there.
    tables = set(connections["celery_sa"].introspection.table_names()) - {"django_migrations"}
    assert tables <= {"celery_taskmeta", "celery_tasksetmeta"}


@pytest.mark.parametrize(
    ("vendor", "expected"),
    [
        ("mysql", "`results`.`qc_taskmeta`"),
        ("postgresql", '"results"."qc_taskmeta"'),
        ("mssql", "[results].[qc_taskmeta]"),
    ],
)
def test_schemas_are_quoted_for_the_result_database(vendor: str, expected: str) -> None:
    with override_settings(
        CELERY_DATABASE_TABLE_NAMES={"task": "qc_taskmeta"},
        CELERY_DATABASE_TABLE_SCHEMAS={"task": "results"},
    ):
        configure_tables(vendors.get(vendor))
        assert TaskResult._meta.db_table == expected
        assert GroupResult._meta.db_table == "celery_tasksetmeta"
    assert TaskResult._meta.db_table == "celery_taskmeta"


def test_a_reset_keeps_the_registered_alias_on_its_test_database() -> None:
    before = settings.DATABASES["celery_sa"]["NAME"]
    assert before.endswith("test_results.sqlite3")
    with override_settings(CELERY_SA_DATABASE_ALIAS="default"):  # resets the resolution
        pass
    assert result_alias() == "celery_sa"
    assert settings.DATABASES["celery_sa"]["NAME"] == before
