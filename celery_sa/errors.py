"""What goes wrong, said the same way everywhere: the exceptions celery_sa raises about its
configuration, and the wording of database errors shown to people.

The system checks (:mod:`celery_sa.checks`) give each configuration error its id and hint.
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.utils.translation import gettext as _
from sqlalchemy.engine import URL


class BackendURLError(ValueError):
    """``CELERY_RESULT_BACKEND`` cannot be used; the message is one line saying why."""


class NoDatabaseURL(BackendURLError):
    """The setting is missing, or is not a database (``db+…``) result backend URL."""


class UnparsableURL(BackendURLError):
    """The URL cannot be parsed."""


class UnsupportedDatabase(BackendURLError):
    """A database, driver or form of URL celery_sa cannot read results from."""


class AliasTaken(BackendURLError):
    """``CELERY_SA_DATABASE_ALIAS`` already names another database in ``DATABASES``."""


def translated(message: str) -> str:
    """``message`` in the active language where Django is set up, unchanged elsewhere: the
    URL functions (:mod:`celery_sa.db.url`) are public, and may run before ``django.setup()``
    (in a settings module) or without Django settings at all."""
    if settings.configured and apps.ready:
        return _(message)
    return message


def one_line(exc: BaseException) -> str:
    """A database error as one line: the driver's own message, whitespace folded."""
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split())


def cannot_connect(url: URL, exc: BaseException) -> str:
    """The one-line message for a failed connection to the result database."""
    shown = url.render_as_string(hide_password=True)
    # Translators: url is the database URL (password hidden); error is the driver's message.
    return _("Cannot connect to the result database (%(url)s): %(error)s") % {
        "url": shown,
        "error": one_line(exc),
    }


def not_answering(exc: BaseException, password: str = "") -> str:
    """The result database did not answer (refused or lost the connection): nothing to fix
    but to wait for it, or for the failover to end. ``password`` is kept out of the message
    should the driver quote it."""
    error = one_line(exc)[:200]
    if password:
        error = error.replace(password, "***")
    # Translators: error is the database driver's message.
    return _("The result database is not answering: %(error)s") % {"error": error}


def unreadable_table(table: str, exc: BaseException) -> str:
    """Why the result table ``table`` could not be read, and the command that fixes it."""
    return _(
        # Translators: table is a table name; error is the database's message.
        "Cannot read the Celery result table %(table)s (%(error)s). Create or "
        "upgrade it with: python manage.py celery_sa_tables upgrade"
    ) % {"table": table, "error": one_line(exc)[:200]}
