from django.contrib import admin
from django.urls import path

from celery_sa.views import metrics

urlpatterns = [path("admin/", admin.site.urls), path("metrics/celery/", metrics)]
