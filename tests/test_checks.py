"""Each system check fires on the misconfiguration it names, with a hint that says the fix."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import celery
import pytest
from django.conf import settings
from django.core.checks import CheckMessage, run_checks
from django.test import override_settings

from tests.support.commands import manage_py, project_env
from tests.support.databases import ResultDB

# Transactional: a check run under another CELERY_RESULT_BACKEND swaps the result alias's
# connection, which must not happen inside a test-wide atomic block.
pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def celery_sa_messages(databases: list[str] | None = None) -> dict[str, CheckMessage]:
    return {m.id: m for m in run_checks(databases=databases) if m.id.startswith("celery_sa.")}


def test_a_good_configuration_has_no_messages(embedded_result_db: ResultDB) -> None:
    assert celery_sa_messages(databases=["default"]) == {}


@pytest.mark.parametrize(
    ("backend", "check_id"),
    [
        ("redis://localhost:6379/0", "celery_sa.E001"),
        (None, "celery_sa.E001"),
        ("db+mysql://u:p@h:notaport/db", "celery_sa.E002"),
        ("db+oracle://u:p@h/db", "celery_sa.E003"),
        ("db+sqlite:///:memory:", "celery_sa.E003"),
    ],
)
def test_an_unusable_result_backend_is_an_error(backend: str | None, check_id: str) -> None:
    with override_settings(CELERY_RESULT_BACKEND=backend):
        messages = celery_sa_messages()
    assert list(messages) == [check_id]
    assert "CELERY_RESULT_BACKEND" in messages[check_id].msg
    assert messages[check_id].hint


@pytest.mark.parametrize(
    ("backend", "check_id", "message"),
    [
        # One slash missing: no URL, so nothing tells the password from the rest.
        (
            "db+mysql:/celery:S3CRET@db.example.com/results",
            "celery_sa.E002",
            "CELERY_RESULT_BACKEND cannot be parsed: Could not parse SQLAlchemy URL from given "
            "URL string",
        ),
        (
            "redis:/celery:S3CRET@db.example.com/0",
            "celery_sa.E001",
            "CELERY_RESULT_BACKEND is not a database result backend URL (scheme 'redis'; it "
            "must start with 'db+' or 'celery_sa+').",
        ),
    ],
)
def test_a_malformed_url_is_reported_without_its_password(
    backend: str, check_id: str, message: str
) -> None:
    with override_settings(CELERY_RESULT_BACKEND=backend):
        messages = celery_sa_messages()
    assert list(messages) == [check_id]
    assert messages[check_id].msg == message
    assert "S3CRET" not in f"{messages[check_id].msg} {messages[check_id].hint}"


def test_missing_drivers_name_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pymysql" else real_find_spec(name, *a),
    )
    with override_settings(CELERY_RESULT_BACKEND="db+mysql+pymysql://u@db.example.com/r"):
        messages = celery_sa_messages()
    assert list(messages) == ["celery_sa.E004"]
    assert messages["celery_sa.E004"].hint == "pip install PyMySQL"


def test_sql_server_needs_pyodbc_and_mssql_django(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both are installed (for SQL Server's compiled queries): hidden, as where they are not.
    for module in ("pyodbc", "mssql"):
        monkeypatch.setitem(sys.modules, module, None)
    assert importlib.util.find_spec("pyodbc") is None
    with override_settings(
        CELERY_RESULT_BACKEND="db+mssql+pyodbc://sa:pw@sql.example.com/r?driver=ODBC+Driver+18"
    ):
        messages = celery_sa_messages()
    assert messages["celery_sa.E004"].hint == "pip install pyodbc"
    assert messages["celery_sa.E005"].hint == "pip install mssql-django"


def test_a_separate_result_database_needs_the_router() -> None:
    with override_settings(DATABASE_ROUTERS=[]):
        messages = celery_sa_messages()
    assert list(messages) == ["celery_sa.E006"]
    assert "celery_sa.routers.ResultDatabaseRouter" in messages["celery_sa.E006"].hint


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("CELERY_DATABASE_TABLE_NAMES", {"tasks": "x"}),
        ("CELERY_DATABASE_TABLE_NAMES", {"task": ""}),
        ("CELERY_DATABASE_TABLE_SCHEMAS", "results"),
    ],
)
def test_malformed_table_settings_are_errors(setting: str, value: object) -> None:
    with override_settings(**{setting: value}):
        messages = celery_sa_messages()
    assert list(messages) == ["celery_sa.E007"]
    assert setting in messages["celery_sa.E007"].msg


def test_the_alias_setting_must_not_name_another_database() -> None:
    with override_settings(CELERY_SA_DATABASE_ALIAS="default"):
        messages = celery_sa_messages()
    assert list(messages) == ["celery_sa.E008"]


def test_an_unreachable_result_database_is_reported_by_check_database() -> None:
    with override_settings(CELERY_RESULT_BACKEND="db+postgresql+psycopg://nobody@127.0.0.1:1/x"):
        assert "celery_sa.E009" not in celery_sa_messages()  # only with --database
        messages = celery_sa_messages(databases=["default"])
    assert list(messages) == ["celery_sa.E009"]
    assert "127.0.0.1:1" in messages["celery_sa.E009"].msg
    assert "\n" not in messages["celery_sa.E009"].msg


@pytest.mark.services("mysql")
def test_a_wrong_password_is_reported_on_mariadb() -> None:
    with override_settings(CELERY_RESULT_BACKEND="db+mysql://root:wrong@127.0.0.1:3306/test"):
        messages = celery_sa_messages(databases=["default"])
    assert list(messages) == ["celery_sa.E009"]
    assert "Access denied" in messages["celery_sa.E009"].msg
    assert "wrong" not in messages["celery_sa.E009"].msg


@pytest.mark.parametrize(
    ("version", "backend", "fired"),
    [
        ((5, 5, 3, "", ""), "db+sqlite:///x.sqlite3", True),
        ((5, 5, 3, "", ""), "celery_sa+sqlite:///x.sqlite3", False),  # its own engine
        ((5, 6, 0, "", ""), "db+sqlite:///x.sqlite3", False),  # fixed in Celery 5.6
    ],
)
def test_max_overflow_on_celery_55s_backend_is_an_error(
    monkeypatch: pytest.MonkeyPatch, version: tuple[Any, ...], backend: str, fired: bool
) -> None:
    monkeypatch.setattr(celery, "VERSION", version)
    options = {"pool_size": 2, "max_overflow": 1}
    with override_settings(CELERY_RESULT_BACKEND=backend, CELERY_DATABASE_ENGINE_OPTIONS=options):
        messages = celery_sa_messages()
    assert ("celery_sa.E010" in messages) is fired
    if fired:
        assert "upgrade Celery to 5.6" in messages["celery_sa.E010"].hint


def test_result_extended_off_is_a_warning() -> None:
    with override_settings(CELERY_RESULT_EXTENDED=False):
        messages = celery_sa_messages()
    assert list(messages) == ["celery_sa.W001"]


def test_tracking_sends_without_celery_sa_s_backend_is_a_warning() -> None:
    with override_settings(CELERY_SA_TRACK_SENT=True):
        messages = celery_sa_messages()
    assert list(messages) == ["celery_sa.W003"]
    assert "celery_sa+" in messages["celery_sa.W003"].hint
    backend = "celery_sa+" + str(settings.CELERY_RESULT_BACKEND).removeprefix("db+")
    with override_settings(CELERY_SA_TRACK_SENT=True, CELERY_RESULT_BACKEND=backend):
        assert celery_sa_messages() == {}


def test_missing_result_tables_are_a_warning(tmp_path: Path) -> None:
    with override_settings(CELERY_RESULT_BACKEND=f"db+sqlite:///{tmp_path / 'empty.sqlite3'}"):
        messages = celery_sa_messages(databases=["default"])
    assert list(messages) == ["celery_sa.W002"]
    assert "celery_sa_tables create" in messages["celery_sa.W002"].hint


@pytest.mark.slow
def test_manage_py_check_fails_on_a_misconfiguration(tmp_path: Path) -> None:
    env = project_env(tmp_path, CELERY_RESULT_BACKEND="redis://localhost:6379/0")
    run = manage_py(env, "check")
    assert run.returncode == 1
    assert "celery_sa.E001" in run.stderr
    assert "HINT: Set CELERY_RESULT_BACKEND to a database URL" in run.stderr
