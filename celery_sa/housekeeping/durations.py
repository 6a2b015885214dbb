"""Ages and windows as people type them on a command line: ``7d``, ``12h``, ``90m``."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils.dateparse import parse_duration

UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
SHORT = re.compile(r"(?:\d+[wdhms])+")
PART = re.compile(r"(\d+)([wdhms])")
NAMES = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def parse_age(text: str) -> timedelta:
    """A positive duration: numbers with units (``7d``, ``1d12h``, ``30m``, ``2w``, ``45s``)
    or any form Django's ``parse_duration`` reads (``3 days, 10:00:00``, ISO 8601 ``P7D``).

    Raises ``ValueError`` with a message fit for a user.
    """
    value = text.strip().lower()
    if not value:
        raise ValueError("an empty duration: use e.g. 7d, 12h or 1d12h")
    if SHORT.fullmatch(value):
        age = timedelta(
            seconds=sum(int(number) * UNITS[unit] for number, unit in PART.findall(value))
        )
    else:
        parsed = parse_duration(text.strip().upper() if value.startswith("p") else text.strip())
        if parsed is None:
            raise ValueError(
                f"{text!r} is not a duration: use a number and a unit (w, d, h, m, s), "
                "e.g. 7d, 12h or 1d12h"
            )
        age = parsed
    if age <= timedelta(0):
        raise ValueError(f"{text!r} is not a positive duration")
    return age


def describe_age(age: timedelta) -> str:
    """``timedelta(days=1, hours=12)`` -> ``"1 day 12 hours"``."""
    seconds = int(age.total_seconds())
    parts = []
    for name, size in NAMES:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 seconds"
