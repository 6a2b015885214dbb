"""The chords still waiting (celery_sa's backend): each chord whose callback has not run, how
far its header has got, how long it has waited, the stuck ones, and failing one."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from celery_sa.admin.base import ResultAdmin
from celery_sa.admin.chord_actions import FailPlan, fail_chord, plan_failing
from celery_sa.admin.display import format_runtime, state_badge
from celery_sa.admin.filters import matching
from celery_sa.admin.waiting_chords import (
    Callback,
    HeaderTask,
    callback_of,
    callback_state,
    missing_parts,
    parts_done,
    with_callback_heads,
)
from celery_sa.conf import app_settings
from celery_sa.models import Chord, GroupResult
from celery_sa.reports.chords import stuck_after

STUCK, WAITING, CLAIMED = "stuck", "waiting", "claimed"


class ChordStateFilter(admin.SimpleListFilter):
    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            (WAITING, gettext_lazy("waiting")),
            (STUCK, gettext_lazy("stuck")),
            (CLAIMED, gettext_lazy("callback being sent")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        cutoff = timezone.now() - stuck_after()
        if self.value() == WAITING:
            return queryset.filter(date_fired__isnull=True, date_created__gte=cutoff)
        if self.value() == STUCK:
            return queryset.filter(date_fired__isnull=True, date_created__lt=cutoff)
        if self.value() == CLAIMED:
            return queryset.filter(date_fired__isnull=False)
        return queryset


class ChordChangeList(ChangeList):
    """The chords of a page, each with its parts done, read for the page at once."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        done = parts_done([chord.group_id for chord in self.result_list])
        for chord in self.result_list:
            chord.parts_done = done.get(chord.group_id, 0)


@admin.register(Chord)
class ChordAdmin(ResultAdmin):
    list_display = ("group_id", "state", "parts", "date_created", "waited", "callback_name")
    list_filter = (ChordStateFilter,)
    search_fields = ("group_id",)
    ordering = ("date_created", "group_id")
    actions = ("fail_chords",)
    fields = (
        "group_id",
        "state",
        "parts",
        "date_created",
        "waited",
        "callback_view",
        "missing_view",
        "group_link",
        "date_fired",
        "claimed_by",
    )
    readonly_fields = fields

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChordChangeList]:  # type: ignore[override]
        # The table holds the chords in flight only: Django's own paging counts it.
        return ChordChangeList

    def get_paginator(  # type: ignore[override]
        self,
        request: HttpRequest,
        queryset: QuerySet[Chord],
        per_page: int,
        *args: Any,
        **kwargs: Any,
    ) -> Paginator[Chord]:
        return Paginator(queryset, per_page, *args, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Chord]:
        return with_callback_heads(super().get_queryset(request))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Chord], search_term: str
    ) -> tuple[QuerySet[Chord], bool]:
        return matching(queryset, "group_id", search_term.strip()), False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        context = {"stuck_after": format_runtime(stuck_after().total_seconds())}
        return super().changelist_view(request, {**context, **(extra_context or {})})

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting the counter would leave the callback unsent without a word to its
        # errbacks: failing the chord is the way.
        return False

    # -- columns -----------------------------------------------------------------------

    @admin.display(description=gettext_lazy("state"))
    def state(self, obj: Chord) -> SafeString:
        if obj.date_fired is not None:
            key, text = CLAIMED, _("callback being sent")
        elif timezone.now() - obj.date_created > stuck_after():
            key, text = STUCK, _("stuck")
        else:
            key, text = WAITING, _("waiting")
        return format_html(
            '<span class="celery-sa-chord-state" data-state="{}">{}</span>', key, text
        )

    @admin.display(description=gettext_lazy("header tasks returned"))
    def parts(self, obj: Chord) -> SafeString:
        done = self._done(obj)
        if obj.chord_size is None:
            # Translators: a chord's header tasks returned so far, while its size is not
            # recorded yet (its header is still being sent).
            return format_html("{}", _("%(done)d of ?") % {"done": done})
        return format_html(
            '<progress class="celery-sa-progress" max="{}" value="{}" data-failed="no">'
            "</progress> {}",
            obj.chord_size,
            min(done, obj.chord_size),
            # Translators: a chord's header tasks returned, of its size: "3 of 10".
            _("%(done)d of %(size)d") % {"done": done, "size": obj.chord_size},
        )

    @admin.display(description=gettext_lazy("waited"))
    def waited(self, obj: Chord) -> str:
        return format_runtime(max(0.0, (timezone.now() - obj.date_created).total_seconds()))

    @admin.display(description=gettext_lazy("callback"))
    def callback_name(self, obj: Chord) -> str:
        callback = callback_of(obj)
        return callback.name or callback.problem

    @admin.display(description=gettext_lazy("callback"))
    def callback_view(self, obj: Chord) -> SafeString:
        return callback_html(callback_of(obj))

    @admin.display(description=gettext_lazy("header tasks not returned"))
    def missing_view(self, obj: Chord) -> SafeString:
        missing = missing_parts(obj.group_id)
        if missing is None:
            return format_html(
                '<p class="celery-sa-marker">{}</p>',
                _(
                    "Not known: the header's task ids were not recorded (a chord started before "
                    "celery_sa 0.6, or a header given as a generator)."
                ),
            )
        if not missing.total:
            return mark_safe('<span class="celery-sa-empty">—</span>')
        lines = format_html_join(
            mark_safe("<br>"), "{}", ((_missing_line(t),) for t in missing.tasks)
        )
        more = missing.total - len(missing.tasks)
        if not more:
            return lines
        return format_html(
            "{}<br>{}",
            lines,
            ngettext("… and %(count)d more", "… and %(count)d more", more) % {"count": more},
        )

    @admin.display(description=gettext_lazy("header group"))
    def group_link(self, obj: Chord) -> SafeString | str:
        pk = (
            GroupResult.objects.filter(taskset_id=obj.group_id).values_list("pk", flat=True).first()
        )
        if pk is None:
            return "—"
        url = reverse("admin:celery_sa_groupresult_change", args=[pk])
        return format_html('<a href="{}">{}</a>', url, obj.group_id)

    def _done(self, obj: Chord) -> int:
        done = getattr(obj, "parts_done", None)
        if done is None:
            done = parts_done([obj.group_id]).get(obj.group_id, 0)
            obj.parts_done = done  # type: ignore[attr-defined]
        return int(done)

    # -- failing -----------------------------------------------------------------------

    def has_fail_chord_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("celery_sa.fail_chord")

    @admin.action(description=gettext_lazy("Fail selected chords…"), permissions=["fail_chord"])
    def fail_chords(self, request: HttpRequest, queryset: QuerySet[Chord]) -> HttpResponse | None:
        """A page that shows what failing each chord does; done once it is confirmed, to
        the chords nobody has claimed in the meantime."""
        limit = app_settings.action_max_rows
        if queryset[: limit + 1].count() > limit:
            self.message_user(
                request,
                ngettext(
                    # Translators: CELERY_SA_ACTION_MAX_ROWS is a setting.
                    "This action takes at most %(limit)d chord at a time "
                    "(CELERY_SA_ACTION_MAX_ROWS).",
                    "This action takes at most %(limit)d chords at a time "
                    "(CELERY_SA_ACTION_MAX_ROWS).",
                    limit,
                )
                % {"limit": limit},
                level=messages.ERROR,
            )
            return None
        plan = plan_failing(queryset)
        if request.POST.get("post") != "yes":
            return self.fail_confirmation(request, plan)
        for problem in (p.problem for p in plan if p.problem):
            self.message_user(request, problem, level=messages.WARNING)
        operator = request.user.get_username()
        failed: list[str] = []
        late: list[str] = []
        for item in (p for p in plan if not p.problem):
            try:
                done = fail_chord(item, operator)
            except Exception as exc:  # the broker or the result backend refused
                self.message_user(
                    request,
                    # Translators: "group_id" is a Celery group id, "error" an exception
                    # (its class name and message).
                    _(
                        "Chord %(group_id)s was claimed, but failing it raised %(error)s: "
                        "its callback will not run, and the workers' chord sweep reports it "
                        "until its failure is stored."
                    )
                    % {"group_id": item.chord.group_id, "error": f"{type(exc).__name__}: {exc}"},
                    level=messages.ERROR,
                )
                continue
            (failed if done else late).append(item.chord.group_id)
        for group_id in late:
            self.message_user(
                request,
                # Translators: "group_id" is a Celery group id.
                _(
                    "Chord %(group_id)s was claimed first (its callback sent, or failed by "
                    "someone else): nothing was done to it."
                )
                % {"group_id": group_id},
                level=messages.WARNING,
            )
        if failed:
            self.message_user(
                request,
                ngettext(
                    # Translators: "ids" is a comma-separated list of Celery group ids.
                    "Failed %(count)d chord: %(ids)s. Its callback's error callbacks were "
                    "called with a ChordError.",
                    "Failed %(count)d chords: %(ids)s. Their callbacks' error callbacks were "
                    "called with a ChordError.",
                    len(failed),
                )
                % {"count": len(failed), "ids": ", ".join(failed)},
                level=messages.SUCCESS,
            )
        return None

    def fail_confirmation(self, request: HttpRequest, plan: list[FailPlan]) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": _("Fail these chords?"),
            "opts": self.model._meta,
            "plan": plan,
            "failable": [p for p in plan if not p.problem],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "changelist_url": reverse("admin:celery_sa_chord_changelist")
            + ("?" + request.GET.urlencode() if request.GET else ""),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/celery_sa/chord/fail_confirmation.html", context)


def callback_html(callback: Callback) -> SafeString:
    """A chord's callback: its task's name, its id linked to its task page (once it has a
    row) and its state."""
    if callback.name is None:
        return format_html('<p class="celery-sa-marker"><strong>{}</strong></p>', callback.problem)
    found = callback_state(callback.task_id)
    if found is None:
        return format_html("{} {} {}", callback.name, callback.task_id or "", state_badge(None))
    url = reverse("admin:celery_sa_taskresult_change", args=[found[0]])
    return format_html(
        '{} <a href="{}">{}</a> {}', callback.name, url, callback.task_id, state_badge(found[1])
    )


def _missing_line(task: HeaderTask) -> SafeString:
    if task.pk is None:
        # Translators: a header task the result table has no row for.
        return format_html("{} {}", task.task_id, _("(no row: not stored yet)"))
    url = reverse("admin:celery_sa_taskresult_change", args=[task.pk])
    return format_html('<a href="{}">{}</a> {}', url, task.task_id, state_badge(task.status))
