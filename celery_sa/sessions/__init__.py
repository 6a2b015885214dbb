"""SQLAlchemy sessions for your own data, in tasks and out of them.

- :class:`SessionTask`: a Celery base task whose ``self.session`` is a fresh session per
  execution, always closed (``task``);
- :func:`session_scope`: the same session handling for views and commands (``scope``);
- :func:`get_engine`: the pooled, fork-safe engine of a named database, one per process
  (``engines``, which also says how databases are configured).
"""

from celery_sa.sessions.engines import dispose_engines, get_engine
from celery_sa.sessions.scope import session_scope
from celery_sa.sessions.task import SessionTask

__all__ = ["SessionTask", "dispose_engines", "get_engine", "session_scope"]
