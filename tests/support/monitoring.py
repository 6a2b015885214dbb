"""celery_sa's Grafana dashboard and Prometheus alert rules (``celery_sa/monitoring/``) read as
data: their queries, the metric names those queries use, the names a scrape of the metrics
view holds, and Prometheus' promtool to check them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import celery_sa

MONITORING = Path(celery_sa.__file__).resolve().parent / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
ALERTS = MONITORING / "alerts.yml"
ROOT = MONITORING.parent.parent

METRIC = re.compile(r"\bcelery_sa_\w+")
REAL_REPLICA_ONLY = frozenset({"celery_sa_replica_lag_seconds", "celery_sa_replica_replicating"})
"""The metrics only a database that replicates exports (a real MariaDB or PostgreSQL replica,
tests/db/test_read_replica.py), not the SQLite result database."""


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana imports it."""
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of ``board``, rows and the panels of collapsed rows included."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries() -> list[str]:
    """The PromQL of every panel target, ``$job`` and ``$instance`` as Grafana leaves them."""
    return [target["expr"] for panel in panels(dashboard()) for target in panel.get("targets", [])]


def dashboard_queries() -> list[str]:
    """The queries of every panel target and of every query variable (``label_values``)."""
    variables = [
        variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        for variable in dashboard()["templating"]["list"]
        if variable["type"] == "query"
    ]
    return panel_queries() + variables


def alert_rules() -> list[dict[str, Any]]:
    """The rules of every group of alerts.yml."""
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def metric_names(queries: list[str]) -> set[str]:
    """The celery_sa metrics ``queries`` use, as they write them (a summary's ``_count`` and
    ``_sum`` included, as its samples are named)."""
    return {name for query in queries for name in METRIC.findall(query)}


def used_metric_names() -> set[str]:
    """The celery_sa metrics the dashboard and the alert rules use."""
    return metric_names(dashboard_queries() + [rule["expr"] for rule in alert_rules()])


def exported_names(scrape: str) -> set[str]:
    """The sample names of a scrape of the metrics view (a summary's ``_count`` and ``_sum``
    among them), read by prometheus_client's own parser."""
    return {
        sample.name
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
    }


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Prometheus' promtool run from the repository; a failed test when it is missing."""
    command = shutil.which("promtool")
    if command is None:
        pytest.fail(
            "promtool is not installed: it is Debian's prometheus package "
            "(apt-get install --no-install-recommends prometheus; bash project/run test "
            "installs it)"
        )
    return subprocess.run(
        [command, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
