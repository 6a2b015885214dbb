"""Failing a waiting chord from the admin: what an operator can do about a chord whose header
will never complete (a task lost for good), without ever running its callback.

The chord is claimed exactly as its last header task or the workers' sweep would claim it
(``UPDATE … SET date_fired WHERE date_fired IS NULL``: one claimant wins), so a header task
that returns later finds it claimed and sends nothing. Then, as a worker fails a chord whose
header task failed, its callback's error callbacks run with a
:class:`~celery.exceptions.ChordError` naming the header tasks still missing, the callback is
stored as failed, and the chord's counter is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery.exceptions import ChordError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from celery_sa.admin.actions import celery_app
from celery_sa.admin.waiting_chords import (
    Callback,
    Missing,
    callback_of,
    missing_parts,
    parts_done,
    with_callback_heads,
)
from celery_sa.models import Chord, ChordPart

NAMED_MISSING = 10
"""The missing header task ids a ChordError names (then how many more)."""


@dataclass(frozen=True)
class FailPlan:
    """A selected chord as the confirmation page shows it."""

    chord: Chord
    callback: Callback
    done: int
    missing: Missing | None
    problem: str
    """Why it will not be failed ("" when it will)."""


def plan_failing(queryset: QuerySet[Chord]) -> list[FailPlan]:
    """Each selected chord, oldest first, with what stops it being failed."""
    chords = list(with_callback_heads(queryset).order_by("date_created", "group_id"))
    done = parts_done([chord.group_id for chord in chords])
    plan = []
    for chord in chords:
        callback = callback_of(chord)
        plan.append(
            FailPlan(
                chord=chord,
                callback=callback,
                done=done.get(chord.group_id, 0),
                missing=missing_parts(chord.group_id),
                problem=_problem(chord, callback),
            )
        )
    return plan


def _problem(chord: Chord, callback: Callback) -> str:
    if chord.date_fired is not None:
        # Translators: "group_id" is a Celery group id.
        return _("Chord %(group_id)s: its callback was sent already.") % {
            "group_id": chord.group_id
        }
    if callback.signature is None:
        # Translators: "group_id" is a Celery group id; "problem" says why a stored value
        # cannot be read (e.g. "pickle of celery.canvas.Signature (not executed)").
        return _("Chord %(group_id)s: its callback cannot be read safely (%(problem)s).") % {
            "group_id": chord.group_id,
            "problem": callback.problem,
        }
    return ""


def chord_error(plan: FailPlan, operator: str) -> ChordError:
    """The error the callback's error callbacks get, naming the header tasks missing."""
    chord = plan.chord
    size = "?" if chord.chord_size is None else str(chord.chord_size)
    text = f"Chord {chord.group_id} failed in the admin by {operator}: {plan.done} of {size} "
    text += "header tasks returned"
    if plan.missing is not None and plan.missing.total:
        named = plan.missing.ids[:NAMED_MISSING]
        more = plan.missing.total - len(named)
        text += "; missing: " + ", ".join(named) + (f" and {more} more" if more else "")
    return ChordError(text)


def fail_chord(plan: FailPlan, operator: str) -> bool:
    """Fail the chord of ``plan`` (which has no problem) if nobody has claimed it since it
    was shown: claimed, its errbacks called, its callback stored as failed, its counter
    deleted. False: it was claimed first (its callback was sent, or it was failed already)
    and nothing was done."""
    chord = plan.chord
    claimed = Chord.objects.filter(pk=chord.pk, date_fired__isnull=True).update(
        date_fired=timezone.now(), claimed_by=f"admin:{operator}"[:155]
    )
    if claimed != 1:
        return False
    app = celery_app()
    callback = app.signature(plan.callback.signature)
    error = chord_error(plan, operator)
    try:
        raise error  # Celery stores the failure with the traceback being handled
    except ChordError:
        app.backend.chord_error_from_stack(callback, error)
    with transaction.atomic(using=ChordPart.objects.db):
        ChordPart.objects.filter(group_id=chord.group_id).delete()
        Chord.objects.filter(pk=chord.pk).delete()
    return True
