"""The real services the tests may use (MariaDB, PostgreSQL, Redis, RabbitMQ): which are
configured, and what a test that needs a missing one does (skip, or fail under
CELERY_SA_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest

SERVICES = {
    "mysql": "CELERY_SA_TEST_MYSQL_URL",
    "postgresql": "CELERY_SA_TEST_POSTGRES_URL",
    "redis": "CELERY_SA_TEST_REDIS_URL",
    "rabbitmq": "CELERY_SA_TEST_RABBITMQ_URL",
}
REQUIRE_SERVICES = os.environ.get("CELERY_SA_REQUIRE_SERVICES") == "1"
SKIP_PREFIX = "needs service "


def missing_services(names: Iterable[str]) -> list[str]:
    """Those of the real services ``names`` that are not configured."""
    return [name for name in names if not os.environ.get(SERVICES[name])]


def skip_reason(names: Iterable[str]) -> str:
    """Why a test that needs the services ``names`` did not run (the end-of-run summary
    lists the services it finds in these reasons)."""
    return "; ".join(f"{SKIP_PREFIX}{name}: set {SERVICES[name]}" for name in names)


def require_service(name: str) -> None:
    """Skip unless the real service ``name`` is configured (fail under
    CELERY_SA_REQUIRE_SERVICES=1): the fallback for code that reaches a service without a
    ``services`` marker on its test."""
    if not missing_services([name]):
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"CELERY_SA_REQUIRE_SERVICES=1 but {SERVICES[name]} is not set ({name}).")
    pytest.skip(skip_reason([name]))


def service_url(name: str) -> str:
    """The URL of the real service ``name``; its test says it needs it with
    ``@pytest.mark.services(name)``."""
    require_service(name)
    return os.environ[SERVICES[name]]
