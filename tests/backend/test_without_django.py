"""celery_sa's backend in a Celery worker where Django cannot even be imported, and what
importing the backend brings in where Django is installed: the worker's layer
(celery_sa.backend and celery_sa.sql) imports no Django."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.commands import python_without_settings

pytestmark = pytest.mark.slow  # Python subprocesses, one of them a worker

SCRIPT = """
import json, sys

sys.modules["django"] = None  # from here on, any import of Django fails

import celery_sa.backend  # fails here if anything it imports needs Django

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
    "backend": type(app.backend).__module__,
    "single": single,
    "chord": joined,
    "stored": stored,
    "counters": counters,
}))
"""


IMPORTED = """
import json, sys

import {module}

print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] == "django")))
"""


def test_importing_the_backend_brings_in_no_more_django_than_celery_does() -> None:
    # kombu's JSON serializer imports django.utils.functional where Django is installed
    # (to encode lazy strings): that much any Celery worker imports, and nothing more here.
    celerys = json.loads(
        python_without_settings(IMPORTED.format(module="celery.backends.database"))
    )
    ours = json.loads(python_without_settings(IMPORTED.format(module="celery_sa.backend")))
    assert ours == celerys
    assert "django.conf" not in ours
    assert "django.db" not in ours


def test_a_worker_without_django_stores_reads_and_joins_a_chord(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.sqlite3'}"
    report = json.loads(python_without_settings(SCRIPT, url))
    assert report == {
        "backend": "celery_sa.backend.backend",
        "single": 5,
        "chord": 20,
        # The single task, five header tasks and the callback.
        "stored": 7,
        # The native chord's counter is gone once its callback was sent.
        "counters": 0,
    }
