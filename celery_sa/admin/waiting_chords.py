"""What a waiting chord's admin pages read: its callback, how many of its header tasks have
returned, and which have not, with their states. The header's task ids come from the member
rows celery_sa's backend writes for each chord (:func:`celery_sa.backend.chords.register`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet

from celery_sa.admin.expressions import value_of, with_value_heads
from celery_sa.admin.group_progress import CHUNK
from celery_sa.models import Chord, ChordPart, GroupMember, TaskResult

MISSING_LIMIT = 1_000
"""The header tasks still missing a chord's page lists at most."""


@dataclass(frozen=True)
class Callback:
    """A chord's callback as stored: its task's name and id, or why it cannot be read."""

    name: str | None
    task_id: str | None
    signature: dict[str, Any] | None
    """The signature as stored, read without running code (None: cannot be read)."""
    problem: str = ""


def callback_of(chord: Chord) -> Callback:
    """The callback of ``chord`` (a row from :func:`with_callback_heads`), decoded as the
    admin decodes stored values: a pickle of anything but plain values is not loaded."""
    decoded = value_of(chord, "callback")
    if decoded is None:
        return Callback(None, None, None, problem="—")
    value = decoded.value
    if decoded.problem or not isinstance(value, dict) or not isinstance(value.get("task"), str):
        return Callback(None, None, None, problem=decoded.problem or decoded.text[:200])
    options = value.get("options") if isinstance(value.get("options"), dict) else {}
    task_id = options.get("task_id") if isinstance(options, dict) else None
    return Callback(value["task"], task_id if isinstance(task_id, str) else None, value)


def with_callback_heads(chords: QuerySet[Chord]) -> QuerySet[Chord]:
    """``chords`` with the head of each callback (never a whole huge value)."""
    return with_value_heads(chords.defer("callback"), ("callback",))


def parts_done(group_ids: list[str]) -> dict[str, int]:
    """How many header tasks of each chord have returned (one query)."""
    rows = (
        ChordPart.objects.filter(group_id__in=group_ids)
        .order_by()
        .values_list("group_id")
        .annotate(done=Count("*"))
        .values_list("group_id", "done")
    )
    return dict(rows)


@dataclass(frozen=True)
class HeaderTask:
    """A header task of a chord that has not returned: its state, and its row if it has
    one (``status`` None: no row, the task has not been stored at all)."""

    task_id: str
    status: str | None
    pk: int | None


@dataclass(frozen=True)
class Missing:
    """The header tasks of a chord that have not returned (the first MISSING_LIMIT)."""

    tasks: list[HeaderTask]
    total: int

    @property
    def ids(self) -> list[str]:
        return [task.task_id for task in self.tasks]


def header_ids(group_id: str) -> list[str] | None:
    """The header's task ids, in order, from the member rows celery_sa's backend writes for
    each chord; None when there are none (a header given as a generator, whose tasks were
    not known when it was sent, or a chord started before celery_sa 0.6)."""
    members = GroupMember.objects.filter(group_id=group_id).order_by("group_index")
    ids = list(members.values_list("task_id", flat=True))
    return ids or None


def missing_parts(group_id: str) -> Missing | None:
    """The header tasks of chord ``group_id`` that have not returned, each with its state;
    None when the header's tasks are not known (:func:`header_ids`)."""
    ids = header_ids(group_id)
    if ids is None:
        return None
    returned = set(ChordPart.objects.filter(group_id=group_id).values_list("task_id", flat=True))
    missing = [task_id for task_id in ids if task_id not in returned]
    shown = missing[:MISSING_LIMIT]
    found: dict[str | None, tuple[int, str | None]] = {}
    for start in range(0, len(shown), CHUNK):
        rows = TaskResult.objects.filter(task_id__in=shown[start : start + CHUNK])
        found.update(
            (task_id, (pk, status))
            for task_id, pk, status in rows.values_list("task_id", "pk", "status")
        )
    tasks = [
        HeaderTask(task_id, found[task_id][1], found[task_id][0])
        if task_id in found
        else HeaderTask(task_id, None, None)
        for task_id in shown
    ]
    return Missing(tasks, len(missing))


def callback_state(task_id: str | None) -> tuple[int, str | None] | None:
    """The callback's task row (its pk and state), when it has one."""
    if not task_id:
        return None
    row = TaskResult.objects.filter(task_id=task_id).values_list("pk", "status").first()
    return None if row is None else (row[0], row[1])
