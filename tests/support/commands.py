"""The demo project's commands, run as a user runs them: ``python manage.py …`` in a
subprocess from the checkout, with an environment of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent
"""The checkout: where manage.py is, and where subprocesses run."""


def project_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    """The environment of a demo-project subprocess: nothing from a developer's .env."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CELERY_") and key != "DATABASE_URL"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        ENV_FILE=os.devnull,
        DEMO_DATA_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
    )
    env.update(variables)
    return env


def manage_py(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python manage.py *args`` of the demo project, run as a command in ``env``."""
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )


def python_without_settings(code: str, *args: str) -> str:
    """Run Python ``code`` (with ``args``) from the checkout where no Django settings are
    configured, as a plain Celery worker or a settings module runs; its last output line."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]
