"""Retries bounded by time, not by a count: an operation the database fails (a restart, a
failover, a dropped connection) is retried for as long as a managed database's failover
takes, with Celery's full-jitter backoff, each wait logged."""

from __future__ import annotations

import time
from datetime import timedelta
from math import inf
from typing import Any

from celery.exceptions import ImproperlyConfigured
from celery.utils.log import get_logger
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.exc import DatabaseError, InterfaceError, InvalidRequestError
from sqlalchemy.orm.exc import StaleDataError

# The backend's logger: where users' logging configuration already finds these warnings.
logger = get_logger("celery_sa.backend.backend")

# How long an operation the database fails is retried (Celery's configuration key
# ``sa_backend_retry_timeout``, Django's CELERY_SA_BACKEND_RETRY_TIMEOUT): long enough for a
# managed database's failover (30 to 120 s), not a count of tries that a quick backoff
# spends in two seconds. Celery's result_backend_max_retries still applies when it is set.
DEFAULT_RETRY_TIMEOUT = 120.0
# The longest wait between two tries when result_backend_max_sleep_between_retries_ms is
# not set (Celery's default: 10 s): the backend stores again within a second of the
# database answering.
DEFAULT_MAX_SLEEP_MS = 1000
# What a retry may cure (a restart, a failover, a dropped connection): Celery 5.7's list.
RETRYABLE = (DatabaseError, InterfaceError, InvalidRequestError, StaleDataError)


class TimeBoundRetries:
    """The retries of celery_sa's backend (mixed into it, over Celery's backend)."""

    always_retry: bool
    max_sleep_between_retries_ms: int
    base_sleep_between_retries_ms: int

    def configure_retries(self, conf: Any) -> None:
        """Read the budget and Celery's retry settings from the app's configuration."""
        # Retried unless the user says otherwise, on every Celery 5.5-5.7 (Celery's own
        # database backend retries by default from 5.7 on).
        if not conf.value_set_for("result_backend_always_retry"):
            self.always_retry = True
        if not conf.value_set_for("result_backend_max_sleep_between_retries_ms"):
            self.max_sleep_between_retries_ms = DEFAULT_MAX_SLEEP_MS
        self.retry_timeout = seconds(
            conf.get("sa_backend_retry_timeout", DEFAULT_RETRY_TIMEOUT), "sa_backend_retry_timeout"
        )
        # The tries :meth:`retrying` makes: the user's count, else as many as the time allows.
        self.retry_limit: float = (
            conf.result_backend_max_retries
            if conf.value_set_for("result_backend_max_retries")
            else inf
        )
        # Celery's own loops around these methods (get_task_meta in 5.7) retry no more.
        self.max_retries = 0

    def exception_safe_to_retry(self, exc: BaseException) -> bool:
        return isinstance(exc, RETRYABLE)

    def retrying(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, retried on what :meth:`exception_safe_to_retry`
        accepts for up to :attr:`retry_timeout` seconds (and ``result_backend_max_retries``
        tries, when set), backing off exponentially with full jitter up to
        ``result_backend_max_sleep_between_retries_ms``; each wait is logged as a warning."""
        name = getattr(function, "__name__", repr(function))
        deadline = time.monotonic() + self.retry_timeout
        retries = 0
        while True:
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                if not (self.always_retry and self.exception_safe_to_retry(exc)):
                    raise
                left = deadline - time.monotonic()
                if retries >= self.retry_limit or left <= 0:
                    raise
                retries += 1
                wait = min(self._backoff(retries), left)
                logger.warning(
                    "Failed operation %s. Retrying in %.2f s (retry %d, %.0f s left): %s",
                    name,
                    wait,
                    retries,
                    left,
                    one_line(exc),
                    exc_info=retries == 1,  # the traceback once, not at every wait
                )
                time.sleep(wait)

    def _backoff(self, retries: int) -> float:
        """Seconds to wait before retry number ``retries``: Celery's full-jitter backoff."""
        interval = get_exponential_backoff_interval(
            self.base_sleep_between_retries_ms, retries, self.max_sleep_between_retries_ms, True
        )
        return float(interval) / 1000


def seconds(value: Any, key: str) -> float:
    """A configured duration in seconds (a number or a timedelta), positive."""
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(number, bool) or not isinstance(number, (int, float)) or number <= 0:
        raise ImproperlyConfigured(f"{key} must be a positive number of seconds, not {value!r}")
    return float(number)


def one_line(exc: BaseException) -> str:
    """An exception as one short line (a driver's message may run over several)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}"
