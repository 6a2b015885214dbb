"""The commands' output shows the control characters of stored data escaped, whether they run
as ``manage.py`` commands or through ``call_command``, on stdout and stderr."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from celery_sa.management.output import escape_controls
from tests.support.commands import manage_py, project_env
from tests.support.databases import ResultDB, drop_result_tables
from tests.support.rows import ago, insert_rows, row

pytestmark = pytest.mark.slow  # manage.py run as commands

result_rows = pytest.mark.django_db(transaction=True, databases="__all__")

CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""What a terminal obeys rather than shows: control characters but tab and newline, DEL,
the bidi embeddings, overrides and isolates."""

EXCEPTION = "ValueError: \x1b]0;pwned\x07\x1b[2J\x9b31m\u2066gotcha\u2069"
TABLE = "celery_\x1b[2Jtask\u202emeta"
ESCAPED_TABLE = "celery_\\x1b[2Jtask\\u202emeta"
GREEN, RESET = "\x1b[32;1m", "\x1b[0m"  # Django's SUCCESS style, bold green


@pytest.fixture
def stored_controls(embedded_result_db: ResultDB) -> str:
    """A failure whose task id, name and exception, and two results whose status, hold
    control characters; returns the failure's completion time as the table prints it."""
    done = ago(hours=1).replace(microsecond=0)
    insert_rows(
        row(
            "id\x1b[1A\r",
            name="app.tasks.\u202eevil",
            status="FAILURE",
            date_done=done,
            traceback=f'Traceback (most recent call last):\n  File "x.py", line 1\n{EXCEPTION}\n',
        ),
        *(
            row(f"hidden-{n}", name="app.tasks.add", status="\x1b[8mOK\x7f", date_done=ago(hours=2))
            for n in range(2)
        ),
    )
    return done.strftime("%Y-%m-%d %H:%M:%S")


def result_env(tmp_path: Path, result_db: ResultDB, **variables: str) -> dict[str, str]:
    """The demo project's environment, reading the test's result database."""
    return project_env(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'django.sqlite3'}",
        CELERY_RESULT_BACKEND=result_db.url,
        **variables,
    )


def output_of(via: str, env: dict[str, str], *argv: str) -> str:
    """What the command ``argv`` writes to stdout, run through ``call_command`` or as a
    ``manage.py`` command in ``env``; it must succeed without writing to stderr."""
    if via == "call_command":
        out, err = StringIO(), StringIO()
        call_command(*argv, stdout=out, stderr=err)
        assert err.getvalue() == ""
        return out.getvalue()
    run = manage_py(env, *argv)
    assert (run.returncode, run.stderr) == (0, "")
    return run.stdout


@pytest.fixture
def default_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    """Django's default palette, whatever DJANGO_COLORS a developer has set."""
    monkeypatch.delenv("DJANGO_COLORS", raising=False)


def test_escape_controls_writes_what_a_terminal_obeys_as_escapes() -> None:
    c0 = "".join(chr(code) for code in range(0x20) if chr(code) not in "\n\t")
    c1 = "".join(chr(code) for code in range(0x80, 0xA0))
    bidi = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    assert escape_controls(c0 + "\x7f" + c1) == "".join(
        f"\\x{code:02x}" for code in [*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]
    )
    assert escape_controls(bidi) == (
        "\\u202a\\u202b\\u202c\\u202d\\u202e\\u2066\\u2067\\u2068\\u2069"
    )
    shown = "line\n\tindented ~ é € \u00a0 漢字 \\x1b"
    assert escape_controls(shown) == shown
    assert escape_controls(escape_controls(EXCEPTION)) == escape_controls(EXCEPTION)


@result_rows
@pytest.mark.parametrize("via", ["call_command", "manage.py"])
def test_stats_shows_stored_control_characters_escaped(
    via: str, stored_controls: str, embedded_result_db: ResultDB, tmp_path: Path
) -> None:
    output = output_of(via, result_env(tmp_path, embedded_result_db), "celery_sa_stats")
    assert output.splitlines() == [
        "Task results done in the last 1 day: 3",
        "",
        "Status         Results",
        "\\x1b[8mOK\\x7f        2",
        "FAILURE              1",
        "",
        "Task name             Results  Failures  Failure rate  Newest failure",
        "app.tasks.add               2         0          0.0%  —",
        "app.tasks.\\u202eevil        1         1        100.0%  "
        f"{stored_controls}  id\\x1b[1A\\x0d  "
        "ValueError: \\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u2066gotcha\\u2069",
    ]
    assert not CONTROLS.search(output)


@result_rows
def test_stats_json_escapes_them_as_json_does(stored_controls: str) -> None:
    out = StringIO()
    call_command("celery_sa_stats", "--json", stdout=out)
    assert not CONTROLS.search(out.getvalue())
    data = json.loads(out.getvalue())
    assert data["by_status"] == {"\x1b[8mOK\x7f": 2, "FAILURE": 1}
    evil = data["by_name"][1]
    assert (evil["name"], evil["newest_failure"]["task_id"]) == (
        "app.tasks.\u202eevil",
        "id\x1b[1A\r",
    )
    assert evil["newest_failure"]["exception"] == EXCEPTION


def test_a_database_error_on_stderr_is_escaped(tmp_path: Path) -> None:
    # No such table: SQLite's message repeats the configured name.
    env = project_env(tmp_path, CELERY_DATABASE_TABLE_NAMES=f"task={TABLE}")
    run = manage_py(env, "celery_sa_stats")
    assert run.returncode == 1
    assert run.stderr.splitlines()[-1] == (
        f"CommandError: Cannot read the Celery result table {ESCAPED_TABLE} (no such table: "
        f"{ESCAPED_TABLE}). Create or upgrade it with: python manage.py celery_sa_tables upgrade"
    )
    assert not CONTROLS.search(run.stderr)


@result_rows
@pytest.mark.parametrize("table_names", [{"task": TABLE}], indirect=True)
@pytest.mark.parametrize("via", ["call_command", "manage.py"])
def test_force_color_colours_a_line_and_escapes_the_name_in_it(
    via: str,
    table_names: dict[str, str],
    embedded_result_db: ResultDB,
    default_colours: None,
    tmp_path: Path,
) -> None:
    drop_result_tables()
    env = result_env(tmp_path, embedded_result_db, CELERY_DATABASE_TABLE_NAMES=f"task={TABLE}")
    output = output_of(via, env, "celery_sa_tables", "--force-color", "create")
    assert output == "".join(
        f"{GREEN}Created table {name}.\n{RESET}"
        for name in (
            ESCAPED_TABLE,
            "celery_tasksetmeta",
            "celery_sa_chord",
            "celery_sa_chord_part",
            "celery_sa_attempt",
            "celery_sa_group_member",
        )
    )


def test_the_check_report_is_escaped_not_coloured(tmp_path: Path, default_colours: None) -> None:
    # Django colours the report before it is written: escaped, its colours would show as text.
    env = project_env(tmp_path, CELERY_RESULT_BACKEND="redis://localhost:6379/0")
    run = manage_py(env, "celery_sa_stats", "--force-color")
    assert run.returncode == 1
    assert run.stderr.splitlines()[:3] == [
        "SystemCheckError: System check identified some issues:",
        "",
        "ERRORS:",
    ]
    assert "(celery_sa.E001)" in run.stderr
    assert "\\x1b" not in run.stderr
    assert not CONTROLS.search(run.stderr)
