"""Benchmark: the reliability suite's figures (tests/backend/test_reliability.py), medians of runs.

    .venv/bin/python bench/reliability.py [--runs 3] [--failover]

Runs the suite as `bash project/run test tests/backend/test_reliability.py` would, against the
services named by the CELERY_SA_TEST_* variables (default: this machine's, as .ci/run sets
them): a MariaDB restart under 2,000 tasks (a private server the test starts), a pool child
killed mid-transaction, and 10,000 tasks on prefork -c 2 against MariaDB and PostgreSQL
with the admin changelist requested meanwhile. Prints, per scenario, the median of each
figure the tests recorded in test-artifacts/reliability.json.

With --failover, the outage tests instead (tests/backend/test_outage.py, about 6 minutes a
run): private MariaDB and PostgreSQL servers stopped for 5, 30 and 90 s and killed under 300
chords; their figures (test-artifacts/failover.json) include how soon results are stored
again after the database answers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SUITES = {
    False: (["tests/backend/test_reliability.py"], ROOT / "test-artifacts" / "reliability.json"),
    True: (
        ["-m", "outage", "tests/backend/test_outage.py"],
        ROOT / "test-artifacts" / "failover.json",
    ),
}
SERVICES = {
    "CELERY_SA_TEST_MYSQL_URL": "mysql://root@127.0.0.1:3306/test",
    "CELERY_SA_TEST_POSTGRES_URL": "postgres://postgres@127.0.0.1:5432/test",
    "CELERY_SA_TEST_REDIS_URL": "redis://127.0.0.1:6379/0",
    "CELERY_SA_TEST_RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672//",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--failover", action="store_true", help="the outage tests instead")
    options = parser.parse_args()
    tests, artifact = SUITES[options.failover]
    # The suite's sustained load is 2,500 tasks; the figures are of 10,000.
    env = {
        **SERVICES,
        "CELERY_SA_TEST_LOAD_TASKS": "10000",
        **os.environ,
        "CELERY_SA_REQUIRE_SERVICES": "1",
    }
    runs: list[dict[str, dict[str, Any]]] = []
    for number in range(1, options.runs + 1):
        artifact.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "pytest", "-q", *tests]
        completed = subprocess.run(argv, cwd=ROOT, env=env)
        if completed.returncode != 0:
            raise SystemExit(f"run {number}: {' '.join(tests)} failed")
        runs.append(json.loads(artifact.read_text()))
        print(f"run {number}: {json.dumps(runs[-1])}", flush=True)
    print(f"median of {len(runs)} runs:")
    for scenario in runs[0]:
        print(f"  {scenario}")
        for key in runs[0][scenario]:
            values = [run[scenario][key] for run in runs if scenario in run]
            print(f"    {key:<40} {statistics.median(values):>10,.2f}")


if __name__ == "__main__":
    main()
