"""The package's import layers, read from the source: no import cycle, and each layer
imports only from the layers below it (the worker's side no Django at all)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "celery_sa"

# Bottom to top: a module may import from its own layer and those before it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("celery_sa.sql",),  # and celery_sa itself: its __init__ holds the version only
    ("celery_sa.backend",),
    ("celery_sa.errors", "celery_sa.conf", "celery_sa.db", "celery_sa.fields"),
    ("celery_sa.models", "celery_sa.routers", "celery_sa.sessions"),
    ("celery_sa.keyset", "celery_sa.durations"),
    ("celery_sa.tables", "celery_sa.housekeeping", "celery_sa.reports"),
    (
        "celery_sa.admin",
        "celery_sa.templatetags",
        "celery_sa.views",
        "celery_sa.checks",
        "celery_sa.tasks",
        "celery_sa.management",
        "celery_sa.apps",
        "celery_sa.migrations",
    ),
)
# What runs in a Celery worker without Django.
DJANGO_FREE = ("celery_sa.sql", "celery_sa.backend")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (functions and TYPE_CHECKING too)."""
    found: set[str] = set()
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            # "from celery_sa.sql import vendors" imports the module celery_sa.sql.vendors.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: {imported for imported in imports(path) if imported in modules and imported != name}
        for name, path in modules.items()
    }


def layer_of(module: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return 0 if module == "celery_sa" else len(LAYERS)


def test_every_module_has_a_layer() -> None:
    assert [name for name in graph() if layer_of(name) == len(LAYERS)] == []


def test_no_module_imports_from_a_layer_above_it() -> None:
    upward = sorted(
        f"{name} -> {imported}"
        for name, imported_modules in graph().items()
        for imported in imported_modules
        if layer_of(imported) > layer_of(name)
    )
    assert upward == []


def test_the_workers_layer_imports_no_django() -> None:
    offending = sorted(
        f"{module_name(path)} -> {imported}"
        for path in PACKAGE.rglob("*.py")
        if module_name(path).startswith(DJANGO_FREE)
        for imported in imports(path)
        if imported == "django" or imported.startswith("django.")
    )
    assert offending == []


def test_the_sql_layer_imports_no_celery() -> None:
    offending = sorted(
        f"{module_name(path)} -> {imported}"
        for path in (PACKAGE / "sql").rglob("*.py")
        for imported in imports(path)
        if imported.split(".")[0] in ("celery", "kombu")
    )
    assert offending == []


def test_there_is_no_import_cycle() -> None:
    edges = graph()
    # A module imports its package's __init__ implicitly; that edge is no cycle of ours.
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if node.startswith(target + "."):
                continue  # a module importing its own package
            if state.get(target) == 1:
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert cycles == []
