"""celery_sa's backend in a Celery worker where Django cannot even be imported: the worker's
layer (celery_sa.backend and celery_sa.sql) imports no Django."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys

sys.modules["django"] = None  # from here on, any import of Django fails

import celery_sa.backend

imported_by_backend = sorted(m for m in sys.modules if m.startswith("django"))

from celery import Celery, chord
from celery.contrib.testing.worker import start_worker
from sqlalchemy import create_engine, text

url = sys.argv[1]
app = Celery("no_django", broker="memory://", backend="celery_sa+" + url)
app.conf.result_extended = True


@app.task(name="no_django.add")
def add(x, y):
    return x + y


@app.task(name="no_django.total")
def total(values):
    return sum(values)


with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
    single = add.delay(2, 3).get(timeout=30)
    joined = chord(add.s(i, i) for i in range(5))(total.s()).get(timeout=60)

with create_engine(url).connect() as connection:
    stored = connection.execute(
        text("SELECT COUNT(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
    ).scalar_one()
    counters = connection.execute(text("SELECT COUNT(*) FROM celery_sa_chord")).scalar_one()
print(json.dumps({
    "imported_by_backend": imported_by_backend,
    "django_modules": sorted(
        name for name, module in sys.modules.items()
        if name.startswith("django") and module is not None
    ),
    "backend": type(app.backend).__module__,
    "single": single,
    "chord": joined,
    "stored": stored,
    "counters": counters,
}))
"""


def test_a_worker_without_django_stores_reads_and_joins_a_chord(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, url],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        # Only the None that blocks it: no django module was imported, or even tried past it.
        "imported_by_backend": ["django"],
        "django_modules": [],
        "backend": "celery_sa.backend.backend",
        "single": 5,
        "chord": 20,
        # The single task, five header tasks and the callback.
        "stored": 7,
        # The native chord's counter is gone once its callback was sent.
        "counters": 0,
    }
