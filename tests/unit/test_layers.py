"""The package's import layers, read from the source: no import cycle, each layer imports
only from the layers below it, and what a Celery worker runs imports no Django."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "celery_sa"

# Bottom to top: a module may import from its own layer and those before it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("celery_sa", "celery_sa.sql", "celery_sa.lifecycle"),  # __init__: the version only
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
DJANGO_FREE = ("celery_sa", "celery_sa.sql", "celery_sa.lifecycle", "celery_sa.backend")
# Packages of one layer that stand side by side: none imports another.
SIDE_BY_SIDE = ("celery_sa.tables", "celery_sa.housekeeping", "celery_sa.reports")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """The modules ``path`` imports, anywhere in it (in functions and under TYPE_CHECKING
    too): ``from a.b import c`` imports ``a.b.c`` where that is a module, else ``a.b``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in MODULES else base)
    return found


def graph() -> dict[str, set[str]]:
    return {
        name: {imported for imported in imports(path) if imported in MODULES} - {name}
        for name, path in MODULES.items()
    }


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes if p != "celery_sa")


def layer_of(module: str) -> int:
    if module == "celery_sa":
        return 0
    for index, prefixes in enumerate(LAYERS):
        if within(module, prefixes):
            return index
    return len(LAYERS)


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


def test_the_workers_layers_import_no_django() -> None:
    offending = sorted(
        f"{name} -> {imported}"
        for name, path in MODULES.items()
        if name == "celery_sa" or within(name, DJANGO_FREE)
        for imported in imports(path)
        if imported == "django" or imported.startswith("django.")
    )
    assert offending == []


def test_the_sql_layer_imports_no_celery() -> None:
    offending = sorted(
        f"{name} -> {imported}"
        for name, path in MODULES.items()
        if within(name, ("celery_sa.sql",))
        for imported in imports(path)
        if imported.split(".")[0] in ("celery", "kombu")
    )
    assert offending == []


def test_only_the_worker_imports_the_result_backend() -> None:
    # Housekeeping, reports and the admin read the tables through the SQL layer or the ORM.
    offending = sorted(
        f"{name} -> {imported}"
        for name, imported_modules in graph().items()
        if not within(name, ("celery_sa.backend",))
        for imported in imported_modules
        if within(imported, ("celery_sa.backend",))
    )
    assert offending == []


def test_tables_housekeeping_and_reports_stand_apart() -> None:
    offending = sorted(
        f"{name} -> {imported}"
        for name, imported_modules in graph().items()
        for imported in imported_modules
        for package in SIDE_BY_SIDE
        if within(name, (package,))
        and within(imported, SIDE_BY_SIDE)
        and not within(imported, (package,))
    )
    assert offending == []


def test_there_is_no_import_cycle() -> None:
    edges = graph()
    cycles: list[str] = []
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_reading_of_imports_sees_a_package_import_and_a_submodule_import() -> None:
    # The cycle check depends on this: "from celery_sa.db import adapters" is an edge to the
    # submodule, "from celery_sa.db import result_database" one to the package's __init__.
    found = imports(PACKAGE / "checks.py")
    assert {"celery_sa.db", "celery_sa.db.adapters", "celery_sa.db.url"} <= found
