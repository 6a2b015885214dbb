"""The reference pages' content, read from the code so that it cannot drift from it.

- ``celery-sa-settings``: every property of :class:`celery_sa.conf.AppSettings` (one per
  setting), its docstring as written (name, meaning, default).
- ``celery-sa-checks``: every system check id in :mod:`celery_sa.checks`, with the messages
  and hints its code reports (placeholders such as ``%(value)s`` are filled when it runs).
- ``celery-sa-commands``: each management command's ``--help``, as ``manage.py`` prints it,
  subcommands included.
- ``celery-sa-metrics``: every metric family the collector of
  :mod:`celery_sa.reports.metrics` can export, its type, labels and help text.

Each page says which module it was read from. A check id or metric the parser cannot read is
a build error, not a silent gap.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

CHECK_ID = re.compile(r"^celery_sa\.([EWC])\d{3}$")
LEVELS = {"E": "Error", "W": "Warning", "C": "Critical"}
TRANSLATIONS = {"_", "gettext", "gettext_lazy", "ngettext"}
FAMILIES = {"GaugeMetricFamily": "gauge", "SummaryMetricFamily": "summary"}


def _source(module: Any) -> tuple[Path, ast.Module]:
    path = Path(inspect.getfile(module))
    return path, ast.parse(path.read_text(), filename=str(path))


def _literal(node: ast.AST | None) -> str | None:
    """The text of a string literal, or of ``_("…")`` / ``gettext_lazy("…")`` around one,
    possibly followed by ``% {…}``."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _literal(node.left)
    if isinstance(node, ast.Call) and node.args and not node.keywords:
        if isinstance(node.func, ast.Name) and node.func.id in TRANSLATIONS:
            return _literal(node.args[0])
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return ast.unparse(node)[2:-1]  # f"…" shown with its {placeholders}
    return None


def _rst_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|")


def _escaped(text: str | None) -> str | None:
    return None if text is None else _rst_escape(text)


def _literal_block(text: str) -> nodes.literal_block:
    block = nodes.literal_block(text, text)
    block["language"] = "text"
    return block


# --- settings -------------------------------------------------------------------------------


def settings_reference() -> list[tuple[str, str]]:
    """(setting name, docstring) of each of AppSettings' properties, in source order."""
    from celery_sa.conf import AppSettings

    found = []
    for attribute, value in vars(AppSettings).items():
        if not isinstance(value, property) or value.__doc__ is None:
            continue
        doc = inspect.cleandoc(value.__doc__)
        match = re.search(r"``([A-Z][A-Z0-9_]+)``", doc)
        if match is None:
            raise ExtensionError(f"AppSettings.{attribute}: its docstring names no setting")
        found.append((match.group(1), doc))
    return found


class SettingsDirective(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        text = []
        for name, doc in settings_reference():
            text += [f".. _setting-{name}:", "", name, "-" * len(name), "", doc, ""]
        return self.parse_text_to_nodes("\n".join(text), allow_section_headings=True)


# --- system checks ---------------------------------------------------------------------------


@dataclass
class CheckEntry:
    """A check id and what its code reports, each text as reStructuredText."""

    id: str
    messages: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)


def _url_checks(entries: dict[str, CheckEntry]) -> None:
    """CELERY_RESULT_BACKEND's own ids: the message is the exception's, the hint is
    ``_url_hint``'s."""
    from celery_sa import checks

    for error, check_id in checks.URL_CHECK_IDS.items():
        entry = entries.setdefault(check_id, CheckEntry(check_id))
        entry.messages.append(inspect.cleandoc(error.__doc__ or error.__name__))
        entry.hints.append(_rst_escape(str(checks._url_hint(error))))
        entry.functions.append("check_settings")


def checks_reference() -> list[CheckEntry]:
    """Every check id of celery_sa.checks with the messages and hints its function reports."""
    from celery_sa import checks

    path, tree = _source(checks)
    entries: dict[str, CheckEntry] = {}
    _url_checks(entries)
    for function in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        ids = [
            n.value
            for n in ast.walk(function)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and CHECK_ID.match(n.value)
        ]
        # A comment-like mention ("check_settings reports it (celery_sa.E018)") is a return
        # value's comment, not a constant: only constants count.
        calls = [n for n in ast.walk(function) if isinstance(n, ast.Call)]
        for check_id in dict.fromkeys(ids):
            entry = entries.setdefault(check_id, CheckEntry(check_id))
            entry.functions.append(function.name)
            for call in calls:
                _collect_texts(call, function, check_id, entry)
    source_ids = set(re.findall(r'"(celery_sa\.[EWC]\d{3})"', path.read_text()))
    missing = source_ids - set(entries)
    if missing:
        raise ExtensionError(f"check ids the reference cannot place: {sorted(missing)}")
    for entry in entries.values():
        if not entry.messages or not entry.hints:
            raise ExtensionError(f"{entry.id}: no message or no hint read from {path}")
    return sorted(entries.values(), key=lambda e: (e.id[10], int(e.id[11:])))


def _collect_texts(
    call: ast.Call, function: ast.FunctionDef, check_id: str, entry: CheckEntry
) -> None:
    """The message and hint texts of ``call`` when it reports ``check_id``: an
    ``Error``/``Warning`` with that id, or a helper called with the id as an argument (whose
    message is then one of the call's arguments)."""
    arguments = [*call.args, *(k.value for k in call.keywords)]
    if not any(isinstance(a, ast.Constant) and a.value == check_id for a in arguments):
        return
    name = call.func.id if isinstance(call.func, ast.Name) else ""
    if name in {"Error", "Warning", "Critical"}:
        expression = (
            call.args[0] if call.args else next(k.value for k in call.keywords if k.arg == "msg")
        )
        # A message the code words at run time (an exception's own) is shown as its code.
        text = _literal(expression)
        message: str | None = _rst_escape(text) if text else _worded_at_run_time(expression)
        hint = _escaped(_literal(next((k.value for k in call.keywords if k.arg == "hint"), None)))
    else:  # a helper: _missing_driver(driver, id, message) and its installation hint
        message = _escaped(next((t for t in map(_literal, call.args) if t and t != check_id), None))
        hint = _escaped(_helper_hint(name))
    if message:
        entry.messages.append(message)
    if hint:
        entry.hints.append(hint)


def _worded_at_run_time(expression: ast.expr) -> str:
    """A message the code words when it runs: the first line of the docstring of the
    function that words it, or what the expression is."""
    from celery_sa import checks

    if isinstance(expression, ast.Call) and isinstance(expression.func, ast.Name):
        function = getattr(checks, expression.func.id, None)
        if expression.func.id == "str":
            return "The error's own message, naming the setting and what is wrong with it."
        if function is not None and function.__doc__:
            return inspect.cleandoc(function.__doc__).splitlines()[0]
    return f"``{ast.unparse(expression)}``"


def _helper_hint(name: str) -> str | None:
    """The hint a helper of celery_sa.checks gives, read from its own Error call."""
    from celery_sa import checks

    _path, tree = _source(checks)
    for function in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name):
        for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
            for keyword in call.keywords:
                if keyword.arg == "hint":
                    return _literal(keyword.value)
    return None


class ChecksDirective(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        text = []
        for entry in checks_reference():
            level = LEVELS[entry.id[10]]
            title = f"{entry.id} ({level})"
            text += [f".. _check-{entry.id}:", "", title, "-" * len(title), ""]
            for label, values in (("Reported", entry.messages), ("Hint", entry.hints)):
                for value in dict.fromkeys(values):
                    text += [f"{label}", textwrap.indent(value, "   "), ""]
            where = ", ".join(f"``{f}``" for f in dict.fromkeys(entry.functions))
            text += [f"Checked by {where} in ``celery_sa/checks.py``.", ""]
        return self.parse_text_to_nodes("\n".join(text), allow_section_headings=True)


# --- commands --------------------------------------------------------------------------------


def command_names() -> list[str]:
    from celery_sa.management import commands

    folder = Path(inspect.getfile(commands)).parent
    return sorted(p.stem for p in folder.glob("celery_sa_*.py"))


def command_help(name: str) -> list[tuple[str, str]]:
    """(title, --help) of the command and of each of its subcommands."""
    from django.core.management import load_command_class

    os.environ["COLUMNS"] = "88"  # argparse wraps to the terminal; the page has its width
    command = load_command_class("celery_sa", name)
    parser = command.create_parser("manage.py", name)
    found = [(f"manage.py {name}", parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                found.append((f"manage.py {name} {sub}", subparser.format_help()))
    return found


class CommandsDirective(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        result: list[nodes.Node] = []
        for name in command_names():
            section = nodes.section(ids=[nodes.make_id(f"command-{name}")])
            section += nodes.title(name, name)
            for title, text in command_help(name):
                section += nodes.rubric(title, title)
                section += _literal_block(text.rstrip())
            result.append(section)
        return result


# --- metrics ---------------------------------------------------------------------------------


@dataclass
class MetricEntry:
    name: str
    kind: str
    help: str
    labels: list[str]


def metrics_reference() -> list[MetricEntry]:
    """Every metric family the collector constructs, in the order it exports them."""
    from celery_sa.reports import metrics

    path, tree = _source(metrics)
    found = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if not (isinstance(call.func, ast.Name) and call.func.id in FAMILIES):
            continue
        name, documentation = (_literal(a) for a in call.args[:2])
        if not name or not documentation:
            raise ExtensionError(
                f"{path}:{call.lineno}: a metric whose name or help is not a literal"
            )
        labels = next((k.value for k in call.keywords if k.arg == "labels"), None)
        label_names = (
            [_literal(e) or "?" for e in labels.elts] if isinstance(labels, ast.List) else []
        )
        found.append(MetricEntry(name, FAMILIES[call.func.id], documentation, label_names))
    found.sort(
        key=lambda m: next(
            i for i, line in enumerate(path.read_text().splitlines()) if f'"{m.name}"' in line
        )
    )
    return found


class MetricsDirective(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        rows = []
        for metric in metrics_reference():
            labels = ", ".join(f"``{label}``" for label in metric.labels) or "—"
            kind = metric.kind
            if kind == "summary":
                kind = "summary (``quantile`` 0.5 and 0.95, ``_count``, ``_sum``)"
            rows += [
                f"   * - ``{metric.name}``",
                f"     - {kind}",
                f"     - {labels}",
                f"     - {_rst_escape(metric.help)}",
            ]
        table = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 30 15 15 40",
            "",
            "   * - Metric",
            "     - Type",
            "     - Labels",
            "     - Meaning",
            *rows,
        ]
        return self.parse_text_to_nodes("\n".join(table))


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("celery-sa-settings", SettingsDirective)
    app.add_directive("celery-sa-checks", ChecksDirective)
    app.add_directive("celery-sa-commands", CommandsDirective)
    app.add_directive("celery-sa-metrics", MetricsDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
