"""Engines kept one per process: made on first use, shared by threads and greenlets, and
safe across ``fork()`` (a prefork pool child never uses a connection its parent opened)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable

from sqlalchemy import Engine


class ProcessEngines:
    """Engines by key in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[Hashable, Engine] = {}
        os.register_at_fork(after_in_child=self._after_fork_in_child)

    def get(self, key: Hashable, make: Callable[[], Engine]) -> Engine:
        """The engine of ``key``, made by ``make()`` the first time it is asked for."""
        engine = self._engines.get(key)
        if engine is not None:
            return engine
        with self._lock:
            if key not in self._engines:
                self._engines[key] = make()
            return self._engines[key]

    def dispose(self) -> None:
        """Close every pooled connection and forget the engines."""
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def _after_fork_in_child(self) -> None:
        # The parent's connections stay the parent's: close=False drops them from this
        # process's pool without sending anything on the shared sockets (SQLAlchemy's
        # documented recipe). The lock may have been held by another thread at fork time.
        self._lock = threading.Lock()
        for engine in self._engines.values():
            engine.dispose(close=False)
