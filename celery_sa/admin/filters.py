"""Changelist filters whose choices never scan the result table."""

from __future__ import annotations

from typing import Any

from celery import states
from django.contrib import admin
from django.core.cache import cache
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from celery_sa.admin.group_progress import FAILED
from celery_sa.models import GroupMember, TaskResult

# Choices come from the newest rows only (a walk down the date_done index), cached a while.
RECENT_ROWS = 10_000
CHOICES_TTL = 60
EXTRA_STATES = ("REJECTED", "IGNORED")
STORED_LENGTH = 155  # Celery's task_id, name, worker and queue columns


def could_be_stored(value: str) -> bool:
    """Whether a column could hold ``value``: no NUL (PostgreSQL refuses it in a query, an
    error that would read as a broken table) and no longer than Celery's columns."""
    return "\x00" not in value and len(value) <= STORED_LENGTH


def matching(queryset: QuerySet[Any], column: str, value: str | None) -> QuerySet[Any]:
    """The rows whose ``column`` is ``value``; every row for no value; none for a value no
    row can hold."""
    if not value:
        return queryset
    if not could_be_stored(value):
        return queryset.none()
    return queryset.filter(**{column: value})


class StatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(state, state) for state in sorted({*states.ALL_STATES, *EXTRA_STATES})]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return matching(queryset, "status", self.value())


class RecentValuesFilter(admin.SimpleListFilter):
    """Choices: the distinct values of a column among the newest rows."""

    column: str

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        queryset = model_admin.get_queryset(request)
        key = f"celery_sa:choices:{queryset.db}:{queryset.model._meta.db_table}:{self.column}"
        values = cache.get(key)
        if values is None:
            newest = queryset.order_by("-date_done").values_list(self.column, flat=True)
            values = sorted({value for value in newest[:RECENT_ROWS] if value})
            cache.set(key, values, CHOICES_TTL)
        selected = self.value()
        if selected and selected not in values:
            values = sorted([*values, selected])
        return [(value, value) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return matching(queryset, self.column, self.value())


class NameFilter(RecentValuesFilter):
    title = _("task name")
    parameter_name = "name"
    column = "name"


class WorkerFilter(RecentValuesFilter):
    title = _("worker")
    parameter_name = "worker"
    column = "worker"


class QueueFilter(RecentValuesFilter):
    title = _("queue")
    parameter_name = "queue"
    column = "queue"


class GroupProgressFilter(admin.SimpleListFilter):
    """Groups by their tasks' states, through the member rows celery_sa's backend writes
    for each group it saves (indexed joins; groups saved by Celery's own backend have no
    members: "not recorded")."""

    title = _("progress")
    parameter_name = "progress"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("unfinished", _("unfinished")),
            ("failed", _("with a failed task")),
            ("finished", _("finished")),
            ("unrecorded", _("not recorded (Celery's own backend)")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        members = GroupMember.objects.filter(group_id=OuterRef("taskset_id"))
        tasks = TaskResult.objects.filter(task_id=OuterRef("task_id"))
        unfinished = Exists(members.filter(~Exists(tasks.filter(status__in=states.READY_STATES))))
        match self.value():
            case "unfinished":
                return queryset.filter(unfinished)
            case "failed":
                return queryset.filter(
                    Exists(members.filter(Exists(tasks.filter(status__in=FAILED))))
                )
            case "finished":
                return queryset.filter(Exists(members), ~unfinished)
            case "unrecorded":
                return queryset.filter(~Exists(members))
        return queryset
