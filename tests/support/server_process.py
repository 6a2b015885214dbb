"""What a database server of a test's own needs, whichever the database: a free port, its
programs (or a skip), its setup run, and waiting until it answers."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy.exc import OperationalError

from tests.support.services import REQUIRE_SERVICES

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unavailable(message: str) -> NoReturn:
    """Skip the test that needs a private server this machine cannot run (fail under
    CELERY_SA_REQUIRE_SERVICES=1)."""
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def run_setup(command: list[str], cwd: Path | None = None) -> None:
    """Run a server's setup program (its data directory's creation), failing the test with
    the program's output when it fails."""
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if done.returncode:
        output = done.stdout.decode(errors="replace")
        pytest.fail(f"{Path(command[0]).name} failed ({done.returncode}):\n{output[-3000:]}")


def wait_until_answering(
    process: subprocess.Popen[bytes], answer: Callable[[], None], log: Path, name: str
) -> None:
    """Call ``answer`` until it raises no OperationalError; fail with the tail of the
    server's ``log`` when the server exits first or takes longer than START_TIMEOUT."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            answer()
            return
        except OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                pytest.fail(f"the private {name} did not start:\n{tail}")
            time.sleep(0.2)
