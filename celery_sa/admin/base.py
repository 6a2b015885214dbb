"""What every result admin shares: read-only, paged by keys, counted by estimate, and a
clear message instead of an error page when the table cannot be read or the database does
not answer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import SimpleListFilter
from django.contrib.admin.views.main import PAGE_VAR
from django.db import DatabaseError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import capfirst

from celery_sa.admin.pagination import (
    ANCHOR_VAR,
    Anchor,
    AnchoredChangeList,
    EstimatedCountPaginator,
    is_number,
)
from celery_sa.db.outage import read_failure
from celery_sa.db.replica import replica_reads


class ResultAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Rows belong to Celery: view them, delete them with permission, never edit them."""

    show_full_result_count = False
    # Facet counts would be one COUNT(*) per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    # Rendering a row costs more than finding it: 50 a page keep a list of a million rows
    # at about 40 ms (bench/admin_1m.py).
    list_per_page = 50

    class Media:
        # The states' colours and the decoded values' layout: a stylesheet, not inline
        # styles, which a Content Security Policy with style-src 'self' blocks.
        css = {"all": ("celery_sa/admin.css",)}

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[AnchoredChangeList]:
        return AnchoredChangeList

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> EstimatedCountPaginator:
        paginator = EstimatedCountPaginator(queryset, per_page, orphans, allow_empty_first_page)
        paginator.anchor = Anchor.parse(request.GET.get(ANCHOR_VAR))
        page = request.GET.get(PAGE_VAR, "")
        paginator.requested_page = int(page) if is_number(page) else 1
        paginator.show_all_limit = self.list_max_show_all
        return paginator

    def is_list(self, request: HttpRequest) -> bool:
        """Whether ``request`` is for the list (which reads no value column) or a page."""
        url_name = request.resolver_match.url_name if request.resolver_match else ""
        return (url_name or "").endswith("_changelist")

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        """Only the list's own filters: Django allows any lookup on a local field
        (``?traceback__regex=…`` scans the table with a regular expression); anything
        else answers 400, as Django answers a lookup it disallows."""
        return lookup in self.filter_parameters(request)

    def filter_parameters(self, request: HttpRequest) -> set[str]:
        """The query string keys the list's filters read."""
        names: set[str] = set()
        for item in self.get_list_filter(request):
            if isinstance(item, type) and issubclass(item, SimpleListFilter):
                names.add(str(item.parameter_name))
            elif isinstance(item, (list, tuple)):
                field_path, filter_class = str(item[0]), item[1]
                field = self.model._meta.get_field(field_path)
                spec = filter_class(field, request, {}, self.model, self, field_path)  # type: ignore[operator]
                names.update(str(name) for name in spec.expected_parameters())
        return names

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Any:
        # Django 6.1 lets ?_to_field= (empty) past its check and then looks up a field named
        # "" (FieldDoesNotExist, a 500): an empty one is no field.
        return super().get_object(request, object_id, from_field or None)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        try:
            with self.reads_for(request):
                return rendered(super().changelist_view(request, extra_context))
        except DatabaseError as exc:
            return self.table_problem(request, exc)

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            with self.reads_for(request):
                return rendered(super().changeform_view(request, *args, **kwargs))
        except DatabaseError as exc:
            return self.table_problem(request, exc)

    @contextmanager
    def reads_for(self, request: HttpRequest) -> Iterator[None]:
        """A page that only reads (GET) reads from the read replica, when one is set; an
        action (POST) from the result database. A replica that does not answer is said so."""
        if request.method not in ("GET", "HEAD"):
            yield
            return
        with replica_reads() as reads:
            if reads is not None and not reads.answered:
                self.message_user(request, reads.problem, level=messages.WARNING)
            yield

    def table_problem(self, request: HttpRequest, exc: DatabaseError) -> HttpResponse:
        """Not a 500: when the database does not answer, a 503 page that says so (the next
        request after it is back works); when the table is missing or unreadable, the
        command that fixes it, on the admin's index."""
        failure = read_failure(self.model._meta.db_table, exc)
        if failure.outage:
            context = {
                **self.admin_site.each_context(request),
                "title": capfirst(self.opts.verbose_name_plural),
                "opts": self.opts,
                "message": failure.message,
            }
            return TemplateResponse(
                request, "admin/celery_sa/unavailable.html", context, status=503
            )
        self.message_user(request, failure.message, level=messages.ERROR)
        return HttpResponseRedirect(reverse("admin:index"))


def rendered(response: HttpResponse) -> HttpResponse:
    """``response`` rendered now: a template response would otherwise read its lazy
    querysets after the view returned, outside the view's choice of database."""
    if isinstance(response, TemplateResponse):
        response.render()
    return response
