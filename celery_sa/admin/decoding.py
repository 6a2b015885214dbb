"""Decode what Celery stored in a result row, for people to read, without trusting it.

Values are decoded with kombu's serializer registry, as Celery does, honouring
``CELERY_RESULT_SERIALIZER`` and ``CELERY_RESULT_ACCEPT_CONTENT``/``CELERY_ACCEPT_CONTENT``,
and compressed payloads are unpacked. A pickle is never executed: rows from Celery 4 (which
always pickled) and pickle-serialized results are read by an unpickler that builds plain
builtin values only and refuses every class and function; what it refuses is reported by
name, read from the opcodes without running them.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from kombu.serialization import loads, registry

from celery_sa.admin.decompression import TooLarge, expand
from celery_sa.conf import app_settings

DECODE_LIMIT = 1024 * 1024  # larger values, stored or expanded, are previewed, not decoded
PREVIEW_BYTES = 4096
MAX_DEPTH = 100  # deeper values are previewed: printing them would recurse past Python's limit
MAX_TEXT = 2 * DECODE_LIMIT  # the most text a decoded value is shown as
PICKLE_MARKER = b"\x80"  # every pickle of protocol 2 or later starts with it


@dataclass(frozen=True)
class Decoded:
    """A stored value made readable."""

    text: str
    """Pretty-printed JSON of the value, or a preview of the raw bytes."""
    size: int
    """Bytes stored."""
    problem: str = ""
    """Why the value is not shown decoded ("" when it is)."""
    value: Any = None


def decode(raw: bytes | memoryview | None, size: int | None = None) -> Decoded | None:
    """Decode one stored column value (``None`` stays ``None``).

    ``raw`` may be only the head of a larger value whose full ``size`` is given: a value
    over :data:`DECODE_LIMIT` is previewed, never decoded.
    """
    if raw is None:
        return None
    data = bytes(raw)
    total = len(data) if size is None else size
    if total > DECODE_LIMIT:
        # Translators: shown instead of a stored value; "size" is e.g. "10.0 MB".
        problem = _("%(size)s: too large to decode here") % {"size": _size(total)}
        return _preview(data, problem, total)
    try:
        data = expand(data, DECODE_LIMIT)
    except TooLarge:
        # Translators: shown instead of a compressed value; "size" is e.g. "1.0 MB".
        problem = _("expands to more than %(size)s: too large to decode here")
        return _preview(data, problem % {"size": _size(DECODE_LIMIT)}, total)
    except Exception as exc:  # an unknown method, or a corrupt body in its library's words
        # Translators: "error" is a Python exception class name (error, UnknownMethod, …).
        problem = _("cannot be decompressed: %(error)s") % {"error": type(exc).__name__}
        return _preview(data, problem, total)
    content_type, content_encoding = _content_type()
    try:
        value = loads(data, content_type, content_encoding, accept=_accept())  # type: ignore[no-untyped-call]
    except Exception as exc:  # any serializer may fail in its own way on corrupt bytes
        if data.startswith(PICKLE_MARKER):
            return decode_pickle(data)
        # Translators: "serializer" is Celery's serializer name (json, msgpack, …), "error"
        # a Python exception class name (DecodeError, …).
        problem = _("cannot be decoded as %(serializer)s: %(error)s") % {
            "serializer": app_settings.result_serializer,
            "error": type(exc).__name__,
        }
        return _preview(data, problem)
    return _decoded(value, data, len(raw))


def decode_pickle(data: bytes) -> Decoded:
    """Read a pickle of plain values; refuse (and name) anything that would run code."""
    try:
        value = _PlainUnpickler(io.BytesIO(data)).load()
    except _Refused:
        # Translators: what a refused pickle would have built, when no name can be read.
        names = ", ".join(sorted(_globals_in(data))) or _("unknown objects")
        # Translators: "names" is a list of Python classes or functions, e.g.
        # "posix.system", or "unknown objects".
        return _preview(data, _("pickle of %(names)s (not executed)") % {"names": names})
    except Exception as exc:
        # Translators: "error" is a Python exception class name (UnpicklingError, …).
        return _preview(data, _("corrupt pickle: %(error)s") % {"error": type(exc).__name__})
    return _decoded(value, data, len(data))


def _decoded(value: Any, data: bytes, size: int) -> Decoded:
    """``value`` shown, unless it is nested too deeply to print."""
    if _deeper_than(value, MAX_DEPTH):
        # Translators: shown instead of a value; "depth" is a number of levels.
        problem = _("nested deeper than %(depth)d levels: not shown") % {"depth": MAX_DEPTH}
        return _preview(data, problem, size)
    text = _pretty(value)
    if len(text) > MAX_TEXT:
        more = _size(len(text) - MAX_TEXT)
        text = text[:MAX_TEXT] + "\n" + _("… (%(size)s more)") % {"size": more}
    return Decoded(text=text, size=size, value=value)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value``'s containers nest deeper than ``limit`` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class _Refused(pickle.UnpicklingError):
    pass


class _PlainUnpickler(pickle.Unpickler):
    """Builds dicts, lists, tuples, sets, strings, bytes, numbers, booleans and None from
    their own opcodes; any class, function or extension reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("persistent id")


def _globals_in(data: bytes) -> set[str]:
    """The classes and functions a pickle names, read from its opcodes (nothing runs)."""
    names: set[str] = set()
    strings: list[str] = []
    try:
        for opcode, argument, _position in pickletools.genops(data):
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(str(argument))
            elif opcode.name == "GLOBAL":
                names.add(str(argument).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.add(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # a truncated or corrupt pickle: report what was read
        pass
    return names


def _preview(data: bytes, problem: str, size: int | None = None) -> Decoded:
    total = len(data) if size is None else size
    head = data[:PREVIEW_BYTES]
    try:
        shown = head.decode("utf-8")
    except UnicodeDecodeError:  # binary: show the bytes escaped, never raw
        shown = repr(head)
    if total > PREVIEW_BYTES:
        # Translators: ends a truncated preview of a stored value; "size" is e.g. "12.5 KB".
        shown += "\n" + _("… (%(size)s more)") % {"size": _size(total - PREVIEW_BYTES)}
    return Decoded(text=shown, size=total, problem=problem)


def _pretty(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def _size(count: int) -> str:
    if count < 1024:
        return ngettext("%(count)d byte", "%(count)d bytes", count) % {"count": count}
    if count < 1024 * 1024:
        return _("%(size).1f KB") % {"size": count / 1024}
    return _("%(size).1f MB") % {"size": count / 1024 / 1024}


def _content_type() -> tuple[str, str]:
    # What Celery's backend encodes results with (it does not store the content type).
    content_type, content_encoding, _payload = registry.dumps(
        None, serializer=app_settings.result_serializer
    )  # type: ignore[no-untyped-call]
    return content_type, content_encoding


def _accept() -> set[str]:
    accept = app_settings.result_accept_content
    # pickle is read by decode_pickle's plain unpickler, never by kombu's.
    types = {registry.name_to_type.get(name, name) for name in accept}
    return types - {"application/x-python-serialize"}
