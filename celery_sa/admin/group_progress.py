"""How far each group of a list page has got: its members, read from the start of its stored
result, and their states, read for the whole page at once (no query per group)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from celery import states
from django.db.models import BinaryField, QuerySet
from django.db.models.functions import Substr

from celery_sa.models import GroupResult, TaskResult

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LIST_HEAD = 64 * 1024
"""The bytes of each group's stored result a list page reads: about 1,500 members (a list
page of 100 groups reads 6.4 MB at most)."""
CHUNK = 900
"""Member ids a query asks for at most (every database's parameter limit is above)."""
FAILED = frozenset({states.FAILURE, states.REVOKED, states.REJECTED})


@dataclass
class Progress:
    """A group's members and how many have finished or failed."""

    size: int
    cut: bool = False
    """Whether the stored result goes on past what was read (more members than counted)."""
    by_state: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return sum(n for state, n in self.by_state.items() if state in states.READY_STATES)

    @property
    def failed(self) -> int:
        return sum(n for state, n in self.by_state.items() if state in FAILED)

    @property
    def share(self) -> float:
        return self.finished / self.size if self.size else 0.0


def member_ids(head: bytes, group_id: str | None) -> list[str]:
    """The task ids a stored group result names, in its order (its header's), without the
    group's own id: Celery stores a GroupResult as its tuple, in any serializer."""
    text = head.decode("latin-1")
    return [i for i in dict.fromkeys(UUID.findall(text)) if i != group_id]


def with_list_heads(queryset: QuerySet[GroupResult]) -> QuerySet[GroupResult]:
    """Each group's first LIST_HEAD bytes of its stored result (never a whole value)."""
    head = Substr("result", 1, LIST_HEAD + 1, output_field=BinaryField())
    return queryset.annotate(list_head=head)


def progress_of(groups: Iterable[GroupResult]) -> dict[int, Progress]:
    """Each group's progress by primary key; the groups from :func:`with_list_heads`."""
    members: dict[int, list[str]] = {}
    found: dict[int, Progress] = {}
    for group in groups:
        head = bytes(getattr(group, "list_head", None) or b"")
        cut = len(head) > LIST_HEAD
        # An id cut in half at the end is not one: the pattern needs all of it.
        ids = member_ids(head[:LIST_HEAD], group.taskset_id)
        members[group.pk] = ids
        found[group.pk] = Progress(size=len(ids), cut=cut)
    wanted = list(dict.fromkeys(i for ids in members.values() for i in ids))
    state_of: dict[str, str] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = TaskResult.objects.filter(task_id__in=wanted[start : start + CHUNK])
        state_of.update(rows.values_list("task_id", "status"))  # type: ignore[arg-type]
    for pk, ids in members.items():
        by_state = found[pk].by_state
        for task_id in ids:
            state = state_of.get(task_id) or states.PENDING
            by_state[state] = by_state.get(state, 0) + 1
    return found
