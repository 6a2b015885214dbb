"""What the commands write to a terminal: text whose control characters are shown, not obeyed.

Task names, statuses, exceptions, the database's error messages: much of what the commands
print comes from the result table, which whoever can write to it fills. A terminal obeys the
control characters in it (clearing the screen, setting the window title, reordering the line
with bidi overrides) instead of showing them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO, cast

from django.core.management.base import OutputWrapper

_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]  # C0, DEL, C1
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]  # embeddings, overrides, isolates
_ESCAPES = {
    **{code: f"\\x{code:02x}" for code in _CONTROLS if chr(code) not in "\n\t"},
    **{code: f"\\u{code:04x}" for code in _BIDI},
}


def escape_controls(text: str) -> str:
    """``text`` with the characters a terminal would obey written as escapes: the C0
    controls but newline and tab, DEL and the C1 controls as ``\\x1b``, the Unicode bidi
    embeddings, overrides and isolates as ``\\u202e``. Escaped text is left as it is."""
    return text.translate(_ESCAPES)


class EscapingOutput(OutputWrapper):
    """A command's ``stdout`` or ``stderr`` that escapes the control characters of what it
    writes (:func:`escape_controls`) before styling it: the colours of the command's style
    (``write(text, self.style.SUCCESS)``) reach the terminal, the text's own codes do not.
    Text styled before it is written (``write(self.style.SUCCESS(text))``) shows its colour
    codes escaped."""

    _out: TextIO

    @classmethod
    def over(cls, wrapper: OutputWrapper) -> EscapingOutput:
        """An escaping wrapper of ``wrapper``'s stream, with its ending and style."""
        # OutputWrapper keeps its stream in _out and has no public name for it.
        escaping = cls(cast("TextIO", wrapper._out), wrapper.ending)
        escaping.style_func = wrapper.style_func
        return escaping

    def write(  # type: ignore[override]  # as OutputWrapper.write in django-stubs
        self,
        msg: str = "",
        style_func: Callable[[str], str] | None = None,
        ending: str | None = None,
    ) -> None:
        super().write(escape_controls(msg), style_func, ending)

    def overwrite_line(self, msg: str) -> None:
        """Write ``msg`` over the terminal's current line (a progress bar): a carriage
        return, then ``msg`` escaped, without an ending."""
        self._out.write("\r")
        self.write(msg, ending="")
