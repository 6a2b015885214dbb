"""Ages and windows as people type them on a command line: ``7d``, ``12h``, ``90m`` (the
purge's age and the stats' window)."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils.dateparse import parse_duration
from django.utils.translation import gettext as _
from django.utils.translation import ngettext_lazy

UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
SHORT = re.compile(r"(?:\d+[wdhms])+")
PART = re.compile(r"(\d+)([wdhms])")
# Django's own timesince words these the same, so its catalogues translate most of them.
NAMES = (
    (ngettext_lazy("%(num)d day", "%(num)d days", "num"), 86_400),
    (ngettext_lazy("%(num)d hour", "%(num)d hours", "num"), 3_600),
    (ngettext_lazy("%(num)d minute", "%(num)d minutes", "num"), 60),
    (ngettext_lazy("%(num)d second", "%(num)d seconds", "num"), 1),
)


def parse_age(text: str) -> timedelta:
    """A positive duration: numbers with units (``7d``, ``1d12h``, ``30m``, ``2w``, ``45s``)
    or any form Django's ``parse_duration`` reads (``3 days, 10:00:00``, ISO 8601 ``P7D``).

    Raises ``ValueError`` with a message fit for a user.
    """
    value = text.strip().lower()
    if not value:
        raise ValueError(_("an empty duration: use e.g. 7d, 12h or 1d12h"))
    if SHORT.fullmatch(value):
        age = timedelta(
            seconds=sum(int(number) * UNITS[unit] for number, unit in PART.findall(value))
        )
    else:
        parsed = parse_duration(text.strip().upper() if value.startswith("p") else text.strip())
        if parsed is None:
            message = _(
                # Translators: text is what the user typed, quoted.
                "%(text)s is not a duration: use a number and a unit (w, d, h, m, s), "
                "e.g. 7d, 12h or 1d12h"
            )
            raise ValueError(message % {"text": repr(text)})
        age = parsed
    if age <= timedelta(0):
        # Translators: text is what the user typed, quoted.
        raise ValueError(_("%(text)s is not a positive duration") % {"text": repr(text)})
    return age


def describe_age(age: timedelta) -> str:
    """``timedelta(days=1, hours=12)`` -> ``"1 day 12 hours"``."""
    seconds = int(age.total_seconds())
    parts = []
    for name, size in NAMES:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(name % {"num": count})
    return " ".join(parts) or NAMES[-1][0] % {"num": 0}
