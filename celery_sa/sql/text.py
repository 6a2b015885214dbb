"""Text for people, written where no Django runs: marked for translation here, translated
by the Django side that shows it (a worker never shows it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


def gettext_noop(message: str) -> str:
    """Mark ``message`` for ``makemessages`` (which looks for calls of this name), unchanged."""
    return message


@dataclass(frozen=True)
class Message:
    """A marked message and the values of its ``%(name)s`` placeholders."""

    template: str
    params: Mapping[str, object] = field(default_factory=dict)

    def translated(self, gettext: Callable[[str], str]) -> str:
        """The message in the active language of ``gettext`` (Django's)."""
        return gettext(self.template) % self.params
