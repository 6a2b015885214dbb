"""The Grafana dashboard and the Prometheus alert rules celery_sa ships (celery_sa/monitoring/):
promtool accepts the rules and passes their unit tests (tests/monitoring/alerts_test.yml),
every alert has a test that fires it, and both name only metrics the metrics view exports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.test import Client, override_settings

from celery_sa.conf import configured_tables
from celery_sa.db import result_alias
from tests.support.databases import ResultDB
from tests.support.monitoring import (
    ALERTS,
    REAL_REPLICA_ONLY,
    ROOT,
    alert_rules,
    dashboard,
    exported_names,
    metric_names,
    panel_queries,
    panels,
    promtool,
    used_metric_names,
)
from tests.support.rows import ago, insert_into, insert_rows, row

UNIT_TESTS = Path(__file__).resolve().parent / "alerts_test.yml"
GUIDE = ROOT / "docs" / "guides" / "prometheus-grafana.md"
METRICS = "/metrics/celery/"


def test_promtool_accepts_the_alert_rules() -> None:
    checked = promtool("check", "rules", str(ALERTS.relative_to(ROOT)))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    tested = promtool("test", "rules", str(UNIT_TESTS.relative_to(ROOT)))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    unit_tests = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))
    assert [(UNIT_TESTS.parent / path).resolve() for path in unit_tests["rule_files"]] == [ALERTS]
    cases = [case for test in unit_tests["tests"] for case in test["alert_rule_test"]]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    alerts = {rule["alert"] for rule in alert_rules()}
    assert len(alerts) == len(alert_rules()), "two rules share an alert name"
    assert alerts - fired == set(), "alerts no unit test fires"
    assert alerts - quiet == set(), "alerts no unit test expects silent"
    assert {case["alertname"] for case in cases} <= alerts, "tests of alerts that do not exist"


def test_every_rule_waits_has_a_severity_and_says_which_series_fired() -> None:
    for rule in alert_rules():
        assert re.fullmatch(r"\d+[mh]", rule.get("for", "")), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description"}, rule["alert"]
        for text in annotations.values():
            assert "{{ $labels." in text or "{{ $value" in text, (rule["alert"], text)


def test_the_guide_tells_every_alert() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    assert [rule["alert"] for rule in alert_rules() if f"`{rule['alert']}`" not in guide] == []


def test_the_dashboard_is_grafanas_with_a_described_query_in_every_panel() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39
    assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"])
    assert board["id"] is None  # Grafana gives an imported dashboard its own
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource",
        "prometheus",
    )
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), "two panels share an id"
    shown = [panel for panel in panels(board) if panel["type"] != "row"]
    assert len(shown) > 20
    for panel in shown:
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert '{job="$job", instance="$instance"' in target["expr"], panel["title"]


def test_the_dashboard_queries_are_promql(tmp_path: Path) -> None:
    # promtool parses the queries as recording rules, with the variables' values filled in.
    records = [
        {"record": f"dashboard:query_{n}", "expr": expr.replace("$job", "celery_sa")}
        for n, expr in enumerate(panel_queries())
    ]
    for record in records:
        record["expr"] = record["expr"].replace("$instance", "app:8000")
        assert "$" not in record["expr"], record["expr"]
    rules = tmp_path / "dashboard.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(records)} rules found" in checked.stdout


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_the_dashboard_and_rules_name_only_metrics_the_view_exports(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    # Every figure the view can give on SQLite: results of two states with their start and
    # send times, unfinished tasks, a retry, a waiting chord, and a read replica set.
    insert_rows(
        row(
            "done",
            date_done=ago(minutes=5),
            date_started=ago(minutes=6),
            date_sent=ago(minutes=7),
            retries=0,
        ),
        row("failed", status="FAILURE", date_done=ago(minutes=4), date_started=ago(minutes=5)),
        row("running", status="STARTED", date_done=ago(minutes=3)),
    )
    tables = configured_tables()
    retry = {"task_id": "failed", "attempt": 0, "name": "app.tasks.job", "status": "RETRY"}
    insert_into(tables.attempt, [{**retry, "date_done": ago(minutes=6), "exception": "OSError"}])
    insert_into(tables.chord, [{"group_id": "waiting", "chord_size": 2, "date_created": ago()}])
    with override_settings(CELERY_SA_READ_REPLICA=result_alias()):
        response = admin_client.get(METRICS)
    assert response.status_code == 200, response.content
    exported = exported_names(response.text)
    used = used_metric_names()

    assert used - REAL_REPLICA_ONLY - exported == set(), "used, and not exported"
    # The rest is the real replica's to export (tests/db/test_read_replica.py asserts it).
    assert REAL_REPLICA_ONLY <= used
    assert REAL_REPLICA_ONLY & exported == set()
    # And the dashboard or the rules show every figure the view exports.
    assert exported - used == set(), "exported, and neither shown nor alerted on"


def test_metric_names_are_read_as_the_queries_write_them() -> None:
    # A summary's _count and _sum as its samples are named; the job "celery_sa" is no metric.
    query = (
        'sum by (name) (celery_sa_task_runtime_seconds_sum{job="celery_sa"}) / '
        'sum by (name) (celery_sa_task_runtime_seconds_count{job="celery_sa"}) '
        'and on () up{job="celery_sa"} == 1'
    )
    assert metric_names([query]) == {
        "celery_sa_task_runtime_seconds_sum",
        "celery_sa_task_runtime_seconds_count",
    }
