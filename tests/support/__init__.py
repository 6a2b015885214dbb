"""What the tests share, by concern: the real services, the result databases, worker
subprocesses, result rows, old tables, the demo project's commands, a private MariaDB, the
Celery apps and tasks the workers import, and the memory a call takes. Fixtures and hooks
are in ``conftest.py``.

``workers`` and ``commands`` need no Django settings: ``bench/`` imports them too.
"""
