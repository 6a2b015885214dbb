"""The documentation in docs/ and the README: its examples are code that parses, and its
reference (docs/_ext/celery_sa_reference.py, read from the code) misses nothing the code
reads or reports. The site itself is built by ``bash project/run docs`` (in CI, warnings as
errors, then its doctest examples run)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.commands import BASE_DIR

DOCS = BASE_DIR / "docs"
PAGES = sorted([BASE_DIR / "README.md", *DOCS.rglob("*.md")])
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def reference() -> ModuleType:
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import celery_sa_reference
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    return celery_sa_reference


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(BASE_DIR)) for p in PAGES])
def test_every_python_example_parses(page: Path) -> None:
    blocks = PYTHON_BLOCK.findall(page.read_text())
    for number, block in enumerate(blocks, 1):
        try:
            ast.parse(block)
        except SyntaxError as exc:
            pytest.fail(f"{page.name}, Python block {number}, line {exc.lineno}: {exc.msg}")


def test_every_setting_the_app_reads_is_in_the_settings_reference() -> None:
    read = set()
    for path in (BASE_DIR / "celery_sa").rglob("*.py"):
        read |= set(re.findall(r'getattr\(settings, "(CELERY_SA_[A-Z_]+)"', path.read_text()))
    documented = {name for name, _doc in reference().settings_reference()}
    assert read, "the app reads settings through getattr(settings, …)"
    assert read <= documented, f"settings without a reference entry: {sorted(read - documented)}"


def test_every_check_id_is_in_the_checks_reference_with_a_message_and_a_hint() -> None:
    source = (BASE_DIR / "celery_sa" / "checks.py").read_text()
    ids = set(re.findall(r"celery_sa\.[EWC]\d{3}", source))
    entries = reference().checks_reference()
    assert {entry.id for entry in entries} == ids
    for entry in entries:
        assert entry.messages and all(entry.messages), entry.id
        assert entry.hints and all(entry.hints), entry.id


def test_the_metrics_reference_lists_each_family_the_collector_builds_once() -> None:
    source = (BASE_DIR / "celery_sa" / "reports" / "metrics.py").read_text()
    built = re.findall(r'(?:Gauge|Summary)MetricFamily\(\s*"(celery_sa_\w+)"', source)
    names = [metric.name for metric in reference().metrics_reference()]
    assert len(built) >= 10
    assert names == sorted(set(built), key=built.index)


def test_the_commands_reference_shows_each_commands_options() -> None:
    ref = reference()
    assert ref.command_names() == ["celery_sa_purge", "celery_sa_stats", "celery_sa_tables"]
    helps = dict(ref.command_help("celery_sa_tables"))
    assert "manage.py celery_sa_tables upgrade" in helps
    assert "--dry-run" in helps["manage.py celery_sa_tables upgrade"]
    assert "--older-than" in dict(ref.command_help("celery_sa_purge"))["manage.py celery_sa_purge"]
