"""Views a project adds to its own URLs: the Prometheus metrics of the task table.

from celery_sa.views import metrics

urlpatterns = [..., path("metrics/celery/", metrics)]
"""

from __future__ import annotations

import hmac

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from celery_sa.conf import app_settings
from celery_sa.db.outage import read_failure
from celery_sa.db.replica import replica_reads
from celery_sa.models import TaskResult
from celery_sa.reports.metrics import TaskResultsCollector


def allowed(request: HttpRequest) -> bool:
    """A scraper with ``CELERY_SA_METRICS_TOKEN`` as its bearer token, or a signed-in user
    with the view permission on task results."""
    token = app_settings.metrics_token
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if token and scheme.lower() == "bearer":
        return hmac.compare_digest(given.strip().encode(), token.encode())
    user = getattr(request, "user", None)  # None without AuthenticationMiddleware
    return bool(user and user.is_active and user.has_perm("celery_sa.view_taskresult"))


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The task table's figures in Prometheus' text format (see TaskResultsCollector)."""
    if not allowed(request):
        response = HttpResponse("Forbidden\n", status=403, content_type="text/plain")
        if app_settings.metrics_token:
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="celery_sa"'
        return response
    window = app_settings.metrics_window
    if window is None:
        return HttpResponse(
            "CELERY_SA_METRICS_WINDOW is not a positive duration (manage.py check).\n",
            status=500,
            content_type="text/plain",
        )
    try:
        with replica_reads() as reads:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(TaskResultsCollector(window, reads))
            body = generate_latest(registry)
    except DatabaseError as exc:
        # Either way a scrape gets no figures: 503, and the reason as the body.
        failure = read_failure(TaskResult._meta.db_table, exc)
        return HttpResponse(f"{failure.message}\n", status=503, content_type="text/plain")
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
