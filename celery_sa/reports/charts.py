"""The overview's charts as SVG written on the server: no script, no CDN, a title and a
description for screen readers, every bar and point a link. Axis text and lines take the
admin theme's colours (CSS variables, light and dark); states take the task list's."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

STATUS_COLOURS = {
    "SUCCESS": "#1b7f3a",
    "FAILURE": "#b3261e",
    "RETRY": "#b25e00",
    "REVOKED": "#6a1b9a",
    "REJECTED": "#6a1b9a",
    "STARTED": "#0b57d0",
    "RECEIVED": "#0b57d0",
    "PENDING": "#5f6368",
}
OTHER_COLOUR = "#5f6368"
# Stacking order, bottom up: what finished, then what is still moving.
STACK_ORDER = ("SUCCESS", "FAILURE", "REVOKED", "REJECTED", "RETRY", "STARTED", "RECEIVED")

WIDTH = 960
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 12, 40


def colour_of(status: str | None) -> str:
    return STATUS_COLOURS.get(status or "", OTHER_COLOUR)


def stack_order(statuses: Sequence[str | None]) -> list[str | None]:
    known = [s for s in STACK_ORDER if s in statuses]
    return known + sorted((s for s in statuses if s not in known), key=lambda s: s or "")


@dataclass(frozen=True)
class Column:
    """One bucket on the x axis: its axis label (two lines at most), its tooltip, and the
    value of each series in it with the link to its rows."""

    label: tuple[str, ...]
    title: str
    values: dict[str | None, float]
    links: dict[str | None, str]


def ticks(maximum: float, smallest: float) -> list[float]:
    """Grid values from 0: a step of 1, 2 or 5 times a power of ten (at least
    ``smallest``) that reaches ``maximum`` in at most five steps."""
    wanted = max(maximum / 5, smallest)
    power = 10.0 ** math.floor(math.log10(wanted))
    step = next(float(s * power) for s in (1, 2, 5, 10) if s * power >= wanted - 1e-12)
    steps = max(1, math.ceil(maximum / step - 1e-9))
    return [round(i * step, 12) for i in range(steps + 1)]


def percent(value: float, step: float) -> str:
    """A rate as the grid needs it: as many decimals as its step has."""
    decimals = max(0, -math.floor(math.log10(step * 100) + 1e-9)) if step else 0
    return f"{value * 100:.{decimals}f}%"


def _frame(
    title: str, description: str, height: int, grid: list[float], tick: Callable[[float], str]
) -> tuple[list[SafeString], int]:
    plot = height - TOP - BOTTOM
    parts = [format_html("<title>{}</title><desc>{}</desc>", title, description)]
    for value in grid:
        y = TOP + plot - value / grid[-1] * plot
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                f"{y:.1f}",
                f"{y:.1f}",
                LEFT - 6,
                f"{y + 4:.1f}",
                tick(value),
            )
        )
    return parts, plot


def _labels(columns: Sequence[Column], height: int) -> list[SafeString]:
    """Each column's label (the caller chose which columns have one)."""
    slot = (WIDTH - LEFT - RIGHT) / len(columns)
    parts = []
    for i, column in enumerate(columns):
        if not column.label:
            continue
        x = LEFT + slot * (i + 0.5)
        lines = format_html_join(
            "",
            '<tspan x="{}" dy="{}">{}</tspan>',
            ((f"{x:.1f}", "0" if n == 0 else "1.2em", line) for n, line in enumerate(column.label)),
        )
        parts.append(
            format_html(
                '<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                f"{x:.1f}",
                height - BOTTOM + 16,
                lines,
            )
        )
    return parts


def _svg(name: str, height: int, parts: list[SafeString]) -> SafeString:
    return format_html(
        '<svg class="celery-sa-chart" id="{}" role="img" viewBox="0 0 {} {}" '
        'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">{}</svg>',
        name,
        WIDTH,
        height,
        mark_safe("".join(parts)),
    )


def stacked_bars(
    name: str,
    title: str,
    description: str,
    columns: Sequence[Column],
    series: Sequence[str | None],
    height: int = 260,
) -> SafeString:
    """Bars of ``columns``, each stacked by ``series`` (states) in their colours; every
    segment a link to its rows, with a tooltip."""
    grid = ticks(max((sum(c.values.values()) for c in columns), default=0), smallest=1)
    ceiling = grid[-1]
    parts, plot = _frame(title, description, height, grid, lambda v: f"{v:,.0f}")
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(columns))
    width = max(1.0, slot * 0.8)
    for i, column in enumerate(columns):
        x = LEFT + slot * i + (slot - width) / 2
        bottom: float = TOP + plot
        for status in series:
            value = column.values.get(status, 0)
            if not value:
                continue
            tall = value / ceiling * plot
            bottom -= tall
            parts.append(
                format_html(
                    '<a href="{}"><rect class="bar" data-status="{}" x="{}" y="{}" width="{}" '
                    'height="{}" fill="{}"><title>{} · {}: {}</title></rect></a>',
                    column.links[status],
                    status or "",
                    f"{x:.1f}",
                    f"{bottom:.1f}",
                    f"{width:.1f}",
                    f"{max(tall, 0.5):.1f}",
                    colour_of(status),
                    column.title,
                    status or "—",
                    f"{value:,.0f}",
                )
            )
    return _svg(name, height, [*parts, *_labels(columns, height)])


def line(
    name: str,
    title: str,
    description: str,
    columns: Sequence[Column],
    series: str,
    height: int = 180,
) -> SafeString:
    """A rate (0 to 1) of one state (``series``, its colour) over ``columns``, as a line
    through linked points; a column without a value (nothing finished there) breaks it."""
    top = max((max(c.values.values(), default=0) for c in columns), default=0)
    grid = [value for value in ticks(top, smallest=0.001) if value <= 1]
    return lines(
        name,
        title,
        description,
        columns,
        [Series(None, series, colour_of(series))],
        grid,
        lambda v: percent(v, grid[1]),
        lambda v: f"{v:.1%}",
        height,
    )


@dataclass(frozen=True)
class Series:
    """One line of a line chart: the key of its values in each column, the name its points
    carry (``data-status``), its colour."""

    key: str | None
    name: str
    colour: str


def lines(
    name: str,
    title: str,
    description: str,
    columns: Sequence[Column],
    series: Sequence[Series],
    grid: list[float],
    tick: Callable[[float], str],
    shown: Callable[[float], str],
    height: int = 180,
) -> SafeString:
    """Each of ``series`` over ``columns`` as a line through linked points (a tooltip each,
    its value as ``shown`` writes it), on ``grid``; a column without the series' value
    breaks its line."""
    ceiling = grid[-1] or 1.0
    frame, plot = _frame(title, description, height, grid, tick)
    parts: list[SafeString] = []
    paths: list[SafeString] = []
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(columns))
    for one in series:
        runs: list[list[str]] = [[]]
        for i, column in enumerate(columns):
            value = column.values.get(one.key)
            if value is None:
                runs.append([])
                continue
            x, y = LEFT + slot * (i + 0.5), TOP + plot - value / ceiling * plot
            runs[-1].append(f"{x:.1f},{y:.1f}")
            parts.append(
                format_html(
                    '<a href="{}"><circle class="point" data-status="{}" cx="{}" cy="{}" r="4" '
                    'fill="{}"><title>{} · {}: {}</title></circle></a>',
                    column.links[one.key],
                    one.name,
                    f"{x:.1f}",
                    f"{y:.1f}",
                    one.colour,
                    column.title,
                    one.name,
                    shown(value),
                )
            )
        paths += [
            format_html(
                '<polyline data-status="{}" points="{}" fill="none" stroke="{}" stroke-width="2"/>',
                one.name,
                " ".join(run),
                one.colour,
            )
            for run in runs
            if len(run) > 1
        ]
    return _svg(name, height, [*frame, *paths, *parts, *_labels(columns, height)])
