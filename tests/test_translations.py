"""Simplified Chinese: a complete, compiled catalogue, and the admin, a command and a system
check that speak it."""

from __future__ import annotations

import gettext
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from celery_sa.models import TaskResult
from tests.support.commands import BASE_DIR, manage_py, project_env
from tests.support.databases import ResultDB
from tests.support.rows import insert_rows, row
from tests.support.services import REQUIRE_SERVICES

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
MESSAGES = BASE_DIR / "celery_sa" / "locale" / "zh_Hans" / "LC_MESSAGES"
CHINESE = {"accept-language": "zh-hans"}


@pytest.fixture(autouse=True)
def back_to_english() -> Iterator[None]:
    """LocaleMiddleware leaves a request's language active in the thread: reset it."""
    yield
    translation.deactivate()


def gettext_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"needs gettext's {name}: `bash project/run test` installs gettext"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    return path


def compiled(po: Path) -> dict[object, str]:
    """The messages of ``po`` as msgfmt compiles them."""
    mo = subprocess.run(
        [gettext_tool("msgfmt"), "--check", "-o", "-", str(po)], capture_output=True, check=True
    ).stdout
    return catalog(mo)


def catalog(mo: bytes) -> dict[object, str]:
    """The messages of a compiled catalogue, keyed by msgid (and plural index)."""
    return dict(gettext.GNUTranslations(io.BytesIO(mo))._catalog)  # type: ignore[attr-defined]


def test_every_message_of_the_app_is_translated_and_compiled(tmp_path: Path) -> None:
    # makemessages on a copy of the app merges today's source into the catalogue: a new or
    # changed message shows as untranslated or fuzzy there.
    app = tmp_path / "celery_sa"
    shutil.copytree(BASE_DIR / "celery_sa", app, ignore=shutil.ignore_patterns("__pycache__"))
    gettext_tool("xgettext")
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "zh_Hans", "--no-obsolete"],
        cwd=app,
        env={**os.environ, "PYTHONPATH": str(BASE_DIR), "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        check=True,
    )
    merged = app / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
    msgattrib = gettext_tool("msgattrib")
    for selection in ("--untranslated", "--only-fuzzy"):
        found = subprocess.run(
            [msgattrib, selection, "--no-obsolete", str(merged)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert found == "", f"{selection} messages:\n{found}"
    # The .mo in the package is the .po compiled, and holds every message of the source.
    shipped = catalog((MESSAGES / "django.mo").read_bytes())
    assert shipped == compiled(MESSAGES / "django.po")
    assert shipped == compiled(merged)
    assert len(shipped) > 150


def test_the_admin_list_and_task_page_speak_chinese(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    insert_rows(
        row("done-1"),
        row("failed-1", status="FAILURE", traceback="Traceback (most recent call last):\n"),
    )
    listing = admin_client.get(reverse("admin:celery_sa_taskresult_changelist"), headers=CHINESE)
    assert listing.status_code == 200
    assert listing.headers["Content-Language"] == "zh-hans"
    page = listing.text
    for chinese in ("任务结果", "状态", "运行时长", "任务名称", "重新运行选中的任务"):
        assert chinese in page, chinese
    assert "完整的任务 ID、完整的任务名称，或任务名称的开头部分。" in page  # the search help
    for english in ("Re-run selected tasks", ">runtime<", "An exact task id"):
        assert english not in page, english

    pk = TaskResult.objects.get(task_id="failed-1").pk
    task = admin_client.get(
        reverse("admin:celery_sa_taskresult_change", args=[pk]), headers=CHINESE
    )
    assert task.status_code == 200
    for chinese in ("执行", "值", "回溯信息", "failed-1", "FAILURE"):
        assert chinese in task.text, chinese
    for english in (">Execution<", ">Values<", ">Traceback<"):
        assert english not in task.text, english


@pytest.mark.slow
def test_a_command_and_a_system_check_speak_chinese(tmp_path: Path) -> None:
    env = project_env(tmp_path, LANGUAGE_CODE="zh-hans")
    create = manage_py(env, "celery_sa_tables", "create")
    assert create.returncode == 0, create.stderr
    assert create.stdout.splitlines()[:2] == [
        "已创建表 celery_taskmeta。",
        "已创建表 celery_tasksetmeta。",
    ]

    env["CELERY_RESULT_BACKEND"] = "redis://localhost:6379/0"
    check = manage_py(env, "check")
    assert check.returncode == 1
    assert "celery_sa.E001" in check.stderr
    assert "HINT: Set CELERY_RESULT_BACKEND" not in check.stderr
    assert "CELERY_RESULT_BACKEND" in check.stderr.split("HINT:")[1]
