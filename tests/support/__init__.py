"""What the tests share, by concern: the real services, the result databases, worker
subprocesses, result rows, old tables, the demo project's commands, a private MariaDB, and
the Celery apps and tasks the workers import. Fixtures and hooks are in ``conftest.py``.

``workers`` and ``commands`` need no Django settings: ``bench/`` imports them too.
"""
