"""The version matrix: ``bash project/run matrix`` (``nox`` from the repository root).

Every supported version is in at least one session. The oldest set and the newest set run
the whole suite against the real services (``.ci/run`` passes their URLs, as for the README's
test command), the oldest without the load tests (marked ``load``: thousands of tasks, the
same code paths as the rest at a larger count); the other sets run the fast tier
(``-m fast``: no server, no process of its own). pyproject.toml's ranges
are these versions: widen one only with a session that tests it.

``bash project/run matrix -l`` lists the sessions; ``-s NAME`` runs one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
# uv makes each session's virtualenv and installs into it in seconds (pip took about 50 s a
# session here); plain venv and pip where uv is missing. uv uses this machine's
# interpreters, never one it would download.
nox.options.default_venv_backend = "uv|venv"
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
nox.options.envdir = str(ROOT / "var" / "nox")
nox.options.error_on_missing_interpreters = True

SERVICE_VARIABLES = (
    "CELERY_SA_TEST_MYSQL_URL",
    "CELERY_SA_TEST_POSTGRES_URL",
    "CELERY_SA_TEST_REDIS_URL",
    "CELERY_SA_TEST_RABBITMQ_URL",
    "CELERY_SA_REQUIRE_SERVICES",
)
# What the sessions choose themselves; everything else comes pinned from requirements.txt.
VARIED = {
    "django",
    "celery",
    "kombu",
    "sqlalchemy",
    "mysqlclient",
    "pymysql",
    "psycopg",
    "prometheus_client",
}
LINT_AND_BUILD = {"ruff", "mypy", "django-stubs", "build", "twine", "nox", "uv"}
# What a session installed, one "name==version" a line (a uv virtualenv has no pip).
INSTALLED = (
    "import importlib.metadata as m; "
    "print('\\n'.join(sorted(f'{d.name}=={d.version}' for d in m.distributions())))"
)


@dataclass(frozen=True)
class Versions:
    """One set of versions to test, each a release series (its newest patch is installed)."""

    python: str
    django: str
    celery: str
    sqlalchemy: str
    drivers: str  # "oldest" or "newest" of the drivers' supported series
    services: bool

    @property
    def name(self) -> str:
        return (
            f"py{self.python}-django{self.django}-celery{self.celery}-sqlalchemy{self.sqlalchemy}"
        )

    @property
    def tag(self) -> str:
        """For CELERY_SA_TEST_TAG: sessions running at once keep their databases apart."""
        return re.sub(r"\W", "", self.name)

    def requirements(self) -> list[str]:
        return [
            f"Django~={self.django}.0",
            f"celery~={self.celery}.0",
            f"SQLAlchemy~={self.sqlalchemy}.0",
            *DRIVERS[self.drivers],
        ]


DRIVERS = {
    "oldest": [
        "mysqlclient~=2.2.1",
        "PyMySQL~=1.1.0",
        "psycopg[binary]~=3.1.0",
        "prometheus_client~=0.20.0",
    ],
    "newest": [
        "mysqlclient~=2.3.0",
        "PyMySQL~=1.2.0",
        "psycopg[binary]~=3.3.0",
        "prometheus_client~=0.26.0",
    ],
}
OLDEST = Versions("3.11", "5.2", "5.5", "2.0", "oldest", services=True)
NEWEST = Versions("3.13", "6.1", "5.7", "2.1", "newest", services=True)
OTHERS = [
    Versions("3.12", "6.0", "5.6", "2.0", "newest", services=False),
    # psycopg 3.1 has no build for Python 3.13: the oldest drivers run on 3.11 only.
    Versions("3.13", "5.2", "5.6", "2.1", "newest", services=False),
    # What a machine with only Python 3.11 gets from requirements.txt.
    Versions("3.11", "5.2", "5.7", "2.1", "newest", services=False),
]


def pinned_tools() -> list[str]:
    """requirements.txt's pins of what the matrix keeps fixed (pytest, brokers' clients, …)."""
    kept = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name = re.split(r"[\[=<>~;! ]", line, maxsplit=1)[0].lower()
        if name not in VARIED | LINT_AND_BUILD:
            kept.append(line)
    return kept


def run_suite(session: nox.Session, versions: Versions) -> None:
    session.chdir(ROOT)
    session.install("-e", ".", *versions.requirements(), *pinned_tools())
    session.run("python", "--version", silent=False)
    session.run("python", "-c", INSTALLED, silent=False)
    env = {"CELERY_SA_TEST_TAG": versions.tag}
    args = ["-p", "no:cacheprovider", *session.posargs]
    if not versions.services:
        # The fast tier: no service configured or required, no process of its own started.
        env |= dict.fromkeys(SERVICE_VARIABLES, "") | {"CELERY_SA_TEST_DISCOVER": "0"}
        args = ["-m", "fast", *args]
    elif versions is OLDEST:
        # The load tests (thousands of tasks, minutes on 2 cores) run with the newest set.
        args = ["-m", "not outage and not load", *args]
    elif os.environ.get("CELERY_SA_REQUIRE_SERVICES") != "1":
        session.warn("CELERY_SA_REQUIRE_SERVICES is not 1: tests of missing services will skip")
    session.run("python", "-m", "pytest", *args, env=env)


# CI runs the newest set through the README's test command (.venv has those versions), and
# beside it `-t oldest` and `-t other` (the service-free sets).
for kind, versions in [("oldest", OLDEST), ("newest", NEWEST)] + [("other", v) for v in OTHERS]:

    def session(session: nox.Session, versions: Versions = versions) -> None:
        run_suite(session, versions)

    scope = "the whole suite" if versions.services else "the fast tier (-m fast)"
    session.__doc__ = f"{kind.capitalize()} versions: {scope}."
    nox.session(python=versions.python, name=f"{kind}-{versions.name}", tags=[kind])(session)
