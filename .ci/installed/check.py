"""What a user of the installed wheel does first: check, migrate, create the tables, print
the DDL, store a result through celery_sa's backend and open it in the admin, in English and
in Simplified Chinese. Any missing template, migration, catalogue or module fails here."""

from __future__ import annotations

import io
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
django.setup()

from celery import Celery  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import translation  # noqa: E402

import celery_sa  # noqa: E402


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def main() -> None:
    assert "site-packages" in celery_sa.__file__, f"not the installed wheel: {celery_sa.__file__}"
    print(
        f"celery_sa {celery_sa.__version__} from {celery_sa.__file__}, Django {django.__version__}"
    )
    newest = os.environ.get("CELERY_SA_WHEEL_DJANGO", "")
    assert django.__version__.startswith(newest), f"not Django {newest}: {django.__version__}"
    run("check", "--fail-level", "WARNING")
    run("migrate", "--no-input")
    assert "Created table celery_taskmeta." in run("celery_sa_tables", "create")
    sql = run("celery_sa_tables", "sql", "--dialect", "mysql")
    assert "CREATE TABLE celery_taskmeta" in sql and "LONGBLOB" in sql, sql
    script = run("celery_sa_tables", "sql", "--dialect", "mssql", "--from", "5.5")
    assert "ALTER TABLE celery_taskmeta ALTER COLUMN id BIGINT NOT NULL;" in script, script

    # Configured from Django's settings as a project's app is: it writes date_done in
    # TIME_ZONE (Django's default, America/Chicago, here), where the admin reads it.
    app = Celery("wheel", broker="memory://")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.backend.store_result("wheel-task", {"answer": 42}, "SUCCESS")
    assert app.AsyncResult("wheel-task").get(timeout=5) == {"answer": 42}

    setup_test_environment()
    get_user_model().objects.create_superuser("admin", "admin@example.com", "admin")
    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))
    page = client.get("/admin/celery_sa/taskresult/")
    body = page.content.decode()
    assert page.status_code == 200 and "wheel-task" in body, (page.status_code, body[:2000])
    task = client.get("/admin/celery_sa/taskresult/?q=wheel-task")
    assert task.status_code == 200
    # The overview's template and migration ship too; the metrics need prometheus_client.
    overview = client.get("/admin/celery_sa/overview/")
    assert overview.status_code == 200, overview.content.decode()[:2000]
    assert 'id="celery-sa-total">1<' in overview.content.decode()
    scraped = client.get("/metrics/celery/").content.decode()
    assert 'celery_sa_task_results{name="",state="SUCCESS"} 1.0' in scraped, scraped
    # The compiled catalogue ships in the wheel: the admin and a command speak Chinese.
    chinese = client.get("/admin/celery_sa/taskresult/", headers={"accept-language": "zh-hans"})
    assert "任务结果" in chinese.content.decode(), chinese.content.decode()[:2000]
    with translation.override("zh-hans"):
        again = run("celery_sa_tables", "create")
    assert "表 celery_taskmeta 已存在。" in again, again
    print("The installed wheel: check, migrate, tables, SQL, backend and admin all work.")


if __name__ == "__main__":
    sys.exit(main())
