"""The README's first command: ``manage.py demo`` on the embedded default, run as a user would."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from tests.support.commands import BASE_DIR, project_env

# Each runs manage.py demo: a worker, and for some the development server.
pytestmark = pytest.mark.slow

DEMO_TIMEOUT = 120


def demo(tmp_path: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "demo", *args],
        cwd=BASE_DIR,
        env=project_env(tmp_path, **variables),
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_with(tmp_path: Path) -> list[int]:
    """PIDs of processes whose environment names this test's data folder."""
    marker = f"DEMO_DATA_DIR={tmp_path}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_the_demo_runs_on_the_embedded_default_and_runs_again(tmp_path: Path) -> None:
    for _ in range(2):
        run = demo(tmp_path, "--no-server")
        assert run.returncode == 0, run.stderr
        assert "Admin login: user 'admin', password 'admin'" in run.stdout
        assert "Enqueued 12 demo tasks" in run.stdout
        assert "Demo tasks finished: 1 FAILURE, 11 SUCCESS." in run.stdout
        # celery_sa's own backend: its native chord, and every task's start recorded.
        assert (
            "Chord: the callback project.tasks.total summed its 3 header tasks' results: "
            "33 (SUCCESS)." in run.stdout
        )
        assert re.search(
            r"^Runtimes recorded for 12 of 12 demo tasks; the longest: project\.tasks\.\w+ "
            r"\(\d+ ms\)\.$",
            run.stdout,
            re.MULTILINE,
        )
        assert re.search(
            r"^Book 1 \(SessionTask example\) is now called 'Dune \(\d\d:\d\d:\d\d\)'\.$",
            run.stdout,
            re.MULTILINE,
        )
        assert run.stdout.rstrip().endswith("Demo stopped.")
    assert {p.name for p in tmp_path.glob("*.sqlite3")} >= {
        "db.sqlite3",
        "results.sqlite3",
        "broker.sqlite3",
        "books.sqlite3",
    }


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_the_worker_and_the_server(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """Ctrl-C in a terminal, SIGTERM from a process manager, a container stop or timeout."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--addrport", f"127.0.0.1:{port}"],
        cwd=BASE_DIR,
        env=project_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C stops the demo" in line:
                break
        assert f"Open http://127.0.0.1:{port}/admin/" in "".join(lines), "".join(lines)
        overview = signed_in_page(f"http://127.0.0.1:{port}", "/admin/celery_sa/overview/")
        # Something to show: the demo's results, with the runtimes celery_sa's backend records.
        assert 'id="celery-sa-slowest"' in overview
        assert "project.tasks.total" in overview
        assert "No result in this window records its start time." not in overview
        assert len(processes_with(tmp_path)) >= 3  # demo, worker (and its pool), server
        process.send_signal(stop)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert output.rstrip().endswith("Demo stopped.")
    # The worker logs the demo's ZeroDivisionError; after Ctrl-C nothing may break.
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
    deadline = time.monotonic() + 10
    while processes_with(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(tmp_path) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def signed_in_page(base: str, path: str) -> str:
    """``path`` as the demo's admin user sees it, signed in through the login form."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with opener.open(f"{base}/admin/login/", timeout=10) as page:
        assert page.status == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.read().decode())
    assert token is not None
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token.group(1), "username": "admin", "password": "admin"}
    ).encode()
    request = urllib.request.Request(
        f"{base}/admin/login/?next={path}", data=form, headers={"Referer": f"{base}/admin/"}
    )
    with opener.open(request, timeout=30) as page:
        assert page.status == 200 and page.url.endswith(path), page.url
        return str(page.read().decode())


def assert_one_line_error(run: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    for fragment in fragments:
        assert any(fragment in line for line in lines), run.stderr
    assert all(line.startswith(("CommandError: celery_sa.", "celery_sa.")) for line in lines)


def test_an_unreachable_result_database_is_one_line(tmp_path: Path) -> None:
    run = demo(
        tmp_path, "--no-server", CELERY_RESULT_BACKEND="db+postgresql+psycopg://u@127.0.0.1:1/r"
    )
    assert_one_line_error(run, "celery_sa.E009", "Cannot connect to the result database", "HINT:")
    assert len(run.stderr.strip().splitlines()) == 1


def without_modules(folder: Path, *names: str) -> dict[str, str]:
    """The environment variables under which a Python subprocess finds none of the modules
    ``names``, as on a machine without them (a ``sitecustomize`` in ``folder`` hides them)."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        f"import sys\n\nsys.modules.update(dict.fromkeys({names!r}))\n"
    )
    return {"PYTHONPATH": str(folder)}


def test_a_missing_driver_is_one_line_per_missing_package(tmp_path: Path) -> None:
    # Both are installed (for SQL Server's compiled queries): hidden, as where they are not.
    hidden = without_modules(tmp_path / "hidden", "pyodbc", "mssql")
    run = demo(
        tmp_path,
        "--no-server",
        CELERY_RESULT_BACKEND="db+mssql+pyodbc://sa:pw@127.0.0.1:1/r",
        **hidden,
    )
    assert_one_line_error(run, "pip install pyodbc", "pip install mssql-django")


@pytest.mark.services("mysql")
def test_a_wrong_password_is_one_line(tmp_path: Path) -> None:
    run = demo(
        tmp_path, "--no-server", CELERY_RESULT_BACKEND="db+mysql://root:wrong@127.0.0.1:3306/test"
    )
    assert_one_line_error(run, "celery_sa.E009", "Access denied")
    assert len(run.stderr.strip().splitlines()) == 1
    assert "wrong" not in run.stderr
