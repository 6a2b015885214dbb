"""The demo serves the admin; / redirects there."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from celery_sa.views import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    # Prometheus scrapes with CELERY_SA_METRICS_TOKEN as its bearer token (or sign in).
    path("metrics/celery/", metrics),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
