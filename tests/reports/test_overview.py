"""The admin's overview page and the Prometheus metrics, on a real worker's rows and on rows
placed by hand around a bucket boundary."""

from __future__ import annotations

import html
import itertools
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission, User
from django.core.checks import run_checks
from django.test import Client, override_settings
from django.utils import translation
from prometheus_client.parser import text_string_to_metric_families

from celery_sa.models import TaskResult
from celery_sa.reports.window import last
from tests.support.databases import ResultDB, drop_result_tables, result_db_param
from tests.support.rows import ago, insert_rows, row, wait_for_results
from tests.support.workers import producer, running_worker

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
OVERVIEW = "/admin/celery_sa/overview/"
METRICS = "/metrics/celery/"
SHANGHAI = ZoneInfo("Asia/Shanghai")
BAR = re.compile(
    r'<a href="([^"]+)"><rect class="bar" data-status="(\w*)"[^>]*><title>([^<]*)</title>'
)


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("admin", password="secret"))
    return client


def bars(page: str) -> list[tuple[str, str, int]]:
    """The states chart's bars: (link, state, rows) from each segment and its tooltip."""
    return [
        (html.unescape(url), status, int(title.rsplit(": ", 1)[1].replace(",", "")))
        for url, status, title in BAR.findall(page)
    ]


def listed(client: Client, url: str) -> list[str]:
    """The task ids the task list at ``url`` shows."""
    response = client.get(url)
    assert response.status_code == 200
    return sorted(str(r.task_id) for r in response.context["cl"].result_list)


def metrics(client: Client, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The metrics view's samples, parsed by prometheus_client's own parser."""
    response = client.get(METRICS, headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.mark.parametrize(
    "result_db",
    [result_db_param(name) for name in ("sqlite", "mysqlclient", "postgresql")],
    indirect=True,
)
@pytest.mark.slow
def test_the_overview_and_metrics_of_a_real_workers_results(
    result_db: ResultDB, sqla_broker: str, tmp_path: Path, admin_client: Client
) -> None:
    # celery_sa's backend, so that the start times (task_track_started) give runtimes; a
    # project in Shanghai, whose worker writes Shanghai's wall time (PostgreSQL: UTC).
    backend_url = "celery_sa+" + result_db.url.removeprefix("db+")
    with running_worker(
        tmp_path, result_url=backend_url, broker_url=sqla_broker, TIME_ZONE="Asia/Shanghai"
    ) as worker:
        app = producer(sqla_broker, result_db.url)
        send = lambda name, *args: str(app.send_task(name, args, queue=worker.queue).id)  # noqa: E731
        added = [send("project.tasks.add", n, 1) for n in range(3)]
        failed = [send("project.tasks.divide", 1, 0) for _ in range(2)]
        wait_for_results(added + failed, worker)
        app.close()
    with override_settings(TIME_ZONE="Asia/Shanghai"):
        look_at_the_overview(admin_client, added, failed)


def look_at_the_overview(client: Client, added: list[str], failed: list[str]) -> None:
    response = client.get(OVERVIEW)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="celery-sa-total">5<' in page
    overview = response.context["overview"]
    assert overview.by_status == {"SUCCESS": 3, "FAILURE": 2}
    assert overview.window.since.tzinfo == SHANGHAI
    [failing] = overview.failing
    assert (failing.name, failing.failures, failing.total) == ("project.tasks.divide", 2, 2)
    assert failing.newest.task_id in failed
    assert failing.newest.exception == "ZeroDivisionError: division by zero"
    assert "ZeroDivisionError: division by zero" in page
    assert {r.name: r.count for r in overview.runtimes.by_name} == {
        "project.tasks.add": 3,
        "project.tasks.divide": 2,
    }
    assert all(0 <= seconds < 60 for r in overview.runtimes.by_name for seconds in r.seconds)
    # Queue waits, as the rows give them (sent to started), by name.
    by_hand = {
        name: sorted(
            row.queue_wait
            for row in TaskResult.objects.filter(task_id__in=ids)
            if row.queue_wait is not None
        )
        for name, ids in (("project.tasks.add", added), ("project.tasks.divide", failed))
    }
    waits = {r.name: sorted(r.seconds) for r in overview.queue_waits.by_name}
    assert waits.keys() == by_hand.keys()
    for name, seconds in by_hand.items():
        assert waits[name] == pytest.approx(seconds, abs=0.002)  # SQLite: milliseconds
    assert 'id="celery-sa-queue-waits"' in page
    # Over time: each bucket's waits are its rows' (here one or two hourly buckets).
    over_time = [entry for entry in overview.queue_waits_over_time if entry.sampled]
    every_wait = sorted(seconds for waits in by_hand.values() for seconds in waits)
    assert sum(entry.durations.count for entry in over_time) == 5
    assert sorted(s for e in over_time for s in e.durations.seconds) == pytest.approx(
        every_wait, abs=0.002
    )
    points = re.findall(r'<a href="([^"]+)"><circle class="point" data-status="p95"', page)
    assert len(points) == len(over_time)
    for url, entry in zip(points, over_time, strict=True):
        assert len(listed(client, html.unescape(url))) == entry.sampled
        assert entry.durations.quantile(0.95) == max(entry.durations.seconds)
    assert 'id="celery-sa-queue-wait-buckets"' in page

    # Every bar segment leads to exactly its rows; so does a failing name.
    segments = bars(page)
    assert sum(rows for _url, _status, rows in segments) == 5
    for url, status, rows in segments:
        shown = listed(client, url)
        assert len(shown) == rows
        assert set(shown) <= set(added if status == "SUCCESS" else failed)
    failing_url = html.unescape(re.search(r'<a href="([^"]+)">project.tasks.divide</a>', page)[1])
    assert listed(client, failing_url) == sorted(failed)

    samples = metrics(client)
    results = "celery_sa_task_results"
    assert samples[(results, (("name", "project.tasks.add"), ("state", "SUCCESS")))] == 3
    assert samples[(results, (("name", "project.tasks.divide"), ("state", "FAILURE")))] == 2
    assert samples[("celery_sa_task_runtime_seconds_count", (("name", "project.tasks.add"),))] == 3
    p95 = ("celery_sa_task_runtime_seconds", (("name", "project.tasks.add"), ("quantile", "0.95")))
    assert 0 <= samples[p95] < 60
    wait = (
        "celery_sa_task_queue_wait_seconds",
        (("name", "project.tasks.add"), ("quantile", "0.95")),
    )
    assert samples[wait] == pytest.approx(by_hand["project.tasks.add"][-1], abs=0.002)
    assert (
        samples[("celery_sa_task_queue_wait_seconds_count", (("name", "project.tasks.divide"),))]
        == 2
    )
    assert samples[("celery_sa_window_seconds", ())] == 3600


def shanghai_midnight() -> datetime:
    """Yesterday's midnight in Shanghai: a bucket edge of the 7 and 30 day windows."""
    today = datetime.now(SHANGHAI).date()
    return datetime.combine(today - timedelta(days=1), datetime.min.time(), SHANGHAI)


@pytest.mark.parametrize(
    ("result_db", "celery_zone"),
    [
        result_db_param("mysqlclient", "UTC"),
        result_db_param("mysqlclient", "America/New_York"),
        # PostgreSQL keeps naive times in the database's TimeZone (UTC here), whatever
        # Celery's zone.
        result_db_param("postgresql", "UTC"),
    ],
    indirect=["result_db"],
)
def test_buckets_are_days_of_the_viewers_zone_whatever_zone_celery_wrote(
    result_db: ResultDB, celery_zone: str, admin_client: Client
) -> None:
    edge = shanghai_midnight()
    stored = edge.astimezone(ZoneInfo(celery_zone)).replace(tzinfo=None)
    insert_rows(
        row("just-before", date_done=stored - timedelta(seconds=1)),
        row("just-after", date_done=stored),
    )
    # By hand: Shanghai is UTC+8 without daylight saving, so its midnight is 16:00 UTC.
    assert (edge.astimezone(ZoneInfo("UTC")).hour, edge.utcoffset()) == (16, timedelta(hours=8))

    def day(moment: datetime) -> str:
        return f"{moment:%b} {moment.day}"

    previous, following = edge - timedelta(days=1), edge + timedelta(days=1)
    expected = {
        "7d": {
            f"{day(previous)}, 18:00 – {day(edge)}, 00:00": 1,
            f"{day(edge)}, 00:00 – 06:00": 1,
        },
        "30d": {
            f"{day(previous)}, 00:00 – {day(edge)}, 00:00": 1,
            f"{day(edge)}, 00:00 – {day(following)}, 00:00": 1,
        },
    }
    with override_settings(TIME_ZONE="Asia/Shanghai", CELERY_TIMEZONE=celery_zone):
        for window, buckets in expected.items():
            rows = admin_client.get(OVERVIEW, {"window": window}).context["bucket_rows"]
            assert {label: total for label, _c, total, _u, _r, _f in rows if total} == buckets
            [after] = [
                url
                for label, _c, _t, url, _r, _f in rows
                if label.startswith(f"{day(edge)}, 00:00")
            ]
            assert listed(admin_client, after) == ["just-after"]


def test_view_permission_on_task_results_is_enough(embedded_result_db: ResultDB) -> None:
    insert_rows(row("recent", date_done=ago(minutes=5)))
    viewer = User.objects.create_user("viewer", password="secret", is_staff=True)
    client = Client()
    client.force_login(viewer)
    assert client.get(OVERVIEW).status_code == 403
    assert client.get(METRICS).status_code == 403

    viewer.user_permissions.add(Permission.objects.get(codename="view_taskresult"))
    viewer = User.objects.get(pk=viewer.pk)
    client.force_login(viewer)
    index = client.get("/admin/").content.decode()
    assert f'href="{OVERVIEW}"' in index
    task_list = client.get("/admin/celery_sa/taskresult/").content.decode()
    assert f'href="{OVERVIEW}" class="celery-sa-overview-link"' in task_list
    response = client.get(OVERVIEW)
    assert response.status_code == 200
    assert 'id="celery-sa-total">1<' in response.content.decode()
    assert (
        metrics(client)[
            ("celery_sa_task_results", (("name", "app.tasks.job"), ("state", "SUCCESS")))
        ]
        == 1
    )


@override_settings(CELERY_SA_METRICS_TOKEN="s3cret-token")
def test_a_scraper_reads_the_metrics_with_the_token(embedded_result_db: ResultDB) -> None:
    insert_rows(row("queued", status="STARTED", date_done=ago(minutes=3)))
    anonymous = Client()
    refused = anonymous.get(METRICS)
    assert (refused.status_code, refused["WWW-Authenticate"]) == (401, 'Bearer realm="celery_sa"')
    assert anonymous.get(METRICS, headers={"Authorization": "Bearer wrong"}).status_code == 401
    samples = metrics(anonymous, Authorization="Bearer s3cret-token")
    assert samples[("celery_sa_tasks_unfinished", (("state", "STARTED"),))] == 1
    age = samples[("celery_sa_tasks_unfinished_oldest_age_seconds", (("state", "STARTED"),))]
    assert 170 < age < 300


def test_the_page_explains_an_empty_table_and_a_wrong_window(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    page = admin_client.get(OVERVIEW).content.decode()
    assert "No task results were done in this window, and no task is unfinished." in page
    assert 'id="celery-sa-states-chart"' not in page

    insert_rows(row("old", date_done=ago(days=3)))
    wrong = admin_client.get(OVERVIEW, {"window": "1y"})
    assert wrong.context["problem"] == "Choose one of the windows offered."
    assert wrong.context["overview"].window.preset == "24h"
    backwards = admin_client.get(OVERVIEW, {"from": "2026-12-02T10:00", "to": "2026-12-01T10:00"})
    assert backwards.context["problem"] == "The end of the window must come after its start."
    garbage = admin_client.get(OVERVIEW, {"from": "yesterday"})
    assert (
        garbage.context["problem"] == "yesterday is not a date and time such as 2026-12-02T08:30."
    )

    since = (datetime.now() - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M")
    chosen = admin_client.get(OVERVIEW, {"from": since})
    assert (chosen.context["problem"], chosen.context["overview"].total) == ("", 1)


def test_a_missing_table_gives_the_task_lists_message(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    drop_result_tables()
    response = admin_client.get(OVERVIEW, follow=True)
    task_list = admin_client.get("/admin/celery_sa/taskresult/", follow=True)
    [message] = [str(m) for m in response.context["messages"]]
    [list_message] = [str(m) for m in task_list.context["messages"]]
    assert message.startswith("Cannot read the Celery result table celery_taskmeta (")
    assert message == list_message
    scrape = admin_client.get(METRICS)
    assert scrape.status_code == 503
    assert scrape.content.decode().startswith("Cannot read the Celery result table")


def test_the_metrics_window_is_checked(embedded_result_db: ResultDB) -> None:
    with override_settings(CELERY_SA_METRICS_WINDOW=-5):
        errors = [m for m in run_checks() if m.id == "celery_sa.E011"]
    assert [(m.msg, m.hint) for m in errors] == [
        (
            "CELERY_SA_METRICS_WINDOW is -5: it must be a positive duration.",
            "Give a number of seconds (3600) or a timedelta(hours=1).",
        )
    ]
    with override_settings(CELERY_SA_METRICS_WINDOW=timedelta(minutes=5)):
        assert not [m for m in run_checks() if m.id == "celery_sa.E011"]


def test_buckets_are_whole_steps_of_the_local_clock() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # The clocks went from 02:00 to 03:00 that night.
    day = last("24h", now=datetime(2026, 3, 29, 3, 20, 7, tzinfo=berlin), zone=berlin)
    buckets = day.buckets()
    assert len(buckets) == 25
    assert (buckets[0].start, buckets[0].end) == (
        day.since,
        datetime(2026, 3, 28, 3, tzinfo=berlin),
    )
    assert (buckets[-1].start, buckets[-1].end) == (
        datetime(2026, 3, 29, 3, tzinfo=berlin),
        day.until,
    )
    assert day.seconds == sum(b.end.timestamp() - b.start.timestamp() for b in buckets) == 24 * 3600
    assert all(b.end == c.start for b, c in itertools.pairwise(buckets))

    month = last("30d", now=datetime(2026, 3, 31, 12, tzinfo=berlin), zone=berlin)
    # Real hours (Python subtracts two times of one zone by their wall clocks).
    lengths = {
        b.start.date(): timedelta(seconds=b.end.timestamp() - b.start.timestamp())
        for b in month.buckets()
    }
    assert lengths[date(2026, 3, 28)] == timedelta(hours=24)
    assert lengths[date(2026, 3, 29)] == timedelta(hours=23)
    assert lengths[date(2026, 3, 31)] == timedelta(hours=12)


def test_the_page_speaks_the_viewers_language(
    embedded_result_db: ResultDB, admin_client: Client
) -> None:
    insert_rows(row("failed", status="FAILURE", date_done=ago(minutes=5), traceback="E: x"))
    try:
        page = admin_client.get(OVERVIEW, headers={"accept-language": "zh-hans"})
    finally:
        translation.deactivate()  # LocaleMiddleware leaves the language on in this thread
    text = page.content.decode()
    assert page["Content-Language"] == "zh-hans"
    assert all(words in text for words in ("概览", "失败最多", "当前未完成", "24 小时"))
    assert "Failing most" not in text


def test_the_window_ends_after_a_result_done_this_very_second() -> None:
    now = datetime(2026, 12, 2, 8, 30, 15, 400_000, tzinfo=SHANGHAI)
    window = last("1h", now=now, zone=SHANGHAI)
    assert (window.since, window.until) == (
        datetime(2026, 12, 2, 7, 30, 16, tzinfo=SHANGHAI),
        datetime(2026, 12, 2, 8, 30, 16, tzinfo=SHANGHAI),
    )
    assert last("1h", now=now.replace(microsecond=0), zone=SHANGHAI).until == now.replace(
        microsecond=0
    )


@pytest.mark.parametrize(
    ("zone", "since"),
    [("Asia/Shanghai", "0001-01-01T00:00"), ("America/New_York", "9999-12-31T20:00")],
)
def test_a_window_at_the_ends_of_the_calendar_is_refused_with_a_message(
    embedded_result_db: ResultDB, admin_client: Client, zone: str, since: str
) -> None:
    with override_settings(TIME_ZONE=zone):
        page = admin_client.get(OVERVIEW, {"from": since})
    assert page.status_code == 200
    assert page.context["problem"] == (
        f"{since} is outside the dates the overview can show (years 1900 to 8999)."
    )
    assert page.context["overview"].window.preset == "24h"
