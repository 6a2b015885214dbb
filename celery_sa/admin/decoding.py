"""Decode what Celery stored in a result row, for people to read, without trusting it.

Values are decoded with kombu's serializer registry, as Celery does, honouring
``CELERY_RESULT_SERIALIZER`` and ``CELERY_RESULT_ACCEPT_CONTENT``/``CELERY_ACCEPT_CONTENT``,
and compressed payloads are unpacked. A pickle is never executed: rows from Celery 4 (which
always pickled) and pickle-serialized results are read by an unpickler that builds plain
builtin values only and refuses every class and function; what it refuses is reported by
name, read from the opcodes without running them.

No stored value makes decoding take memory out of proportion to the decode limit
(``CELERY_SA_DECODE_LIMIT``, DECODE_LIMIT by default): compressed payloads expand in steps
up to it, a pickle's opcodes are checked before it is loaded (VALUE_LIMIT), and a value is
printed only if its text is bounded (PRINT_LIMIT), and kept only up to MAX_TEXT; those three
are given for the default and grow in proportion.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import chain
from json.encoder import encode_basestring
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from kombu.serialization import loads, registry

from celery_sa.admin.decompression import TooLarge, expand
from celery_sa.conf import app_settings

# Larger values, stored or expanded, are previewed, not decoded (CELERY_SA_DECODE_LIMIT);
# the limits below are multiples of it.
DECODE_LIMIT = 1024 * 1024
PREVIEW_BYTES = 4096
MAX_DEPTH = 100  # deeper values are previewed: printing them would recurse past Python's limit
MAX_TEXT = 2 * DECODE_LIMIT  # the most text a decoded value is shown as
# Values that would print as more characters are not printed: a value held in many places
# prints in each, so a few stored bytes can print as gigabytes. Text past MAX_TEXT is
# counted, not kept.
PRINT_LIMIT = 2 * MAX_TEXT
# Pickles that would build objects of more bytes are not loaded (see _check_pickle): one
# stored byte can make a 232-byte set.
VALUE_LIMIT = 32 * DECODE_LIMIT
# Serializers that take far more time and memory than JSON for each byte they read: YAML
# builds a document's node graph first (256 KB: 78 MB and 13 s, measured).
SERIALIZER_LIMITS = {"yaml": 64 * 1024}
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
    limit = decode_limit()
    if total > limit:
        # Translators: shown instead of a stored value; "size" is e.g. "10.0 MB".
        problem = _("%(size)s: too large to decode here") % {"size": _size(total)}
        return _preview(data, problem, total)
    try:
        data = expand(data, limit)
    except TooLarge:
        return _too_large(data, limit, total)
    except Exception as exc:  # an unknown method, or a corrupt body in its library's words
        # Translators: "error" is a Python exception class name (error, UnknownMethod, …).
        problem = _("cannot be decompressed: %(error)s") % {"error": type(exc).__name__}
        return _preview(data, problem, total)
    # A preview counts the bytes expanded; the size is that of the bytes stored.
    return replace(_loaded(data, limit), size=total)


def decode_limit() -> int:
    """``CELERY_SA_DECODE_LIMIT``: the most bytes of a value, stored or expanded, decoded."""
    limit = app_settings.decode_limit
    return limit if isinstance(limit, int) and limit > 0 else DECODE_LIMIT


def _loaded(data: bytes, limit: int) -> Decoded:
    """``data``, expanded, read by the configured serializer or as a plain pickle."""
    try:
        limit = min(SERIALIZER_LIMITS.get(app_settings.result_serializer, limit), limit)
        if len(data) > limit:
            return _too_large_for(data, limit)
        content_type, content_encoding = _content_type()
        value = loads(data, content_type, content_encoding, accept=_accept())  # type: ignore[no-untyped-call]
    except Exception as exc:  # corrupt bytes (each serializer fails its own way), or no msgpack
        # or yaml here; pickles of protocols 0 and 1 have no marker
        if data.startswith(PICKLE_MARKER) or app_settings.result_serializer == "pickle":
            return decode_pickle(data)
        # Translators: "serializer" is Celery's serializer name (json, msgpack, …), "error"
        # a Python exception class name (DecodeError, …).
        problem = _("cannot be decoded as %(serializer)s: %(error)s") % {
            "serializer": app_settings.result_serializer,
            "error": type(exc).__name__,
        }
        return _preview(data, problem)
    return _decoded(value, data)


def decode_pickle(data: bytes) -> Decoded:
    """Read a pickle of plain values; refuse (and name) anything that would run code."""
    try:
        _check_pickle(data)
        value = _PlainUnpickler(io.BytesIO(data)).load()
    except TooLarge:
        return _too_large(data, VALUE_LIMIT * decode_limit() // DECODE_LIMIT)
    except _Refused:
        # Translators: what a refused pickle would have built, when no name can be read.
        names = ", ".join(sorted(_globals_in(data))) or _("unknown objects")
        # Translators: "names" is a list of Python classes or functions, e.g.
        # "posix.system", or "unknown objects".
        return _preview(data, _("pickle of %(names)s (not executed)") % {"names": names})
    except Exception as exc:
        # Translators: "error" is a Python exception class name (UnpicklingError, …).
        return _preview(data, _("corrupt pickle: %(error)s") % {"error": type(exc).__name__})
    return _decoded(value, data)


def _decoded(value: Any, data: bytes) -> Decoded:
    """``value`` shown, unless it is nested too deeply or would print too long."""
    printed = _printed_size(value)
    if printed is None:
        # Translators: shown instead of a value; "depth" is a number of levels.
        problem = _("nested deeper than %(depth)d levels: not shown") % {"depth": MAX_DEPTH}
        return _preview(data, problem)
    shown = _pretty(value) if printed <= PRINT_LIMIT * decode_limit() // DECODE_LIMIT else None
    if shown is None:
        # Translators: shown instead of a value that would print as megabytes of text, or
        # holds a number of thousands of digits.
        return _preview(data, _("too large to show here"))
    text, more = shown
    if more:
        text += "\n" + _("… (%(size)s more)") % {"size": _size(more)}
    return Decoded(text=text, size=len(data), value=value)


_END = object()


def _printed_size(value: Any) -> int | None:
    """At least as many characters as :func:`_pretty` prints ``value`` as, counted until past
    PRINT_LIMIT, or ``None`` if its containers nest deeper than MAX_DEPTH. Walked without
    recursion, a value held in several places counted in each, as it prints there."""
    size, limit = 0, PRINT_LIMIT * decode_limit() // DECODE_LIMIT
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack and size <= limit:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            continue
        depth = len(stack)
        size += 2 * depth  # its line's break, indentation and separators (a key's line too)
        if isinstance(item, dict):
            stack.append(chain(item.keys(), item.values()))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.append(iter(item))
        else:
            size += _leaf_size(item)
            continue
        if depth > MAX_DEPTH:
            return None
        # Its brackets and closing line, or its name as repr() writes it ("frozenset({…})").
        size += 2 * depth + (14 if isinstance(item, (set, frozenset)) else 4)
    return size


def _leaf_size(item: Any) -> int:
    """At least the characters ``item`` prints as: in JSON, as repr() writes it, or as JSON
    writes its repr (what JSON has no type for)."""
    if item is None or isinstance(item, (bool, float)):
        return 26  # as a key, in quotes
    if isinstance(item, int):
        return item.bit_length() // 3 + 4  # its digits, sign and quotes, without writing them
    size = len(encode_basestring(repr(item)))
    if isinstance(item, str):
        size = max(size, len(encode_basestring(item)))
    return size


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


def _check_pickle(data: bytes) -> None:
    """Refuse, from its opcodes and before it is loaded, a pickle that would make the
    unpickler allocate far more than it holds: a length past its end (the unpickler allocates
    it first), a memo index past those set so far (the memo is an array that long), or objects
    past VALUE_LIMIT (:class:`TooLarge`). Nothing runs."""
    memo = built = 0
    limit = VALUE_LIMIT * decode_limit() // DECODE_LIMIT
    marks: list[int] = []
    for count, (opcode, argument) in enumerate(_opcodes(data)):
        name = opcode.name
        if name in _REFUSED_OPCODES:  # the load stops there, refused: checked up to it
            return
        if name in _MEMO_PUTS and argument > memo:  # picklers number their memo 0, 1, 2, …
            raise pickle.UnpicklingError(f"memo index {argument} after {memo} entries")
        memo += name in _MEMO_PUTS or name == "MEMOIZE"
        items = 0
        if name == "MARK":
            marks.append(count)
        elif pickletools.markobject in opcode.stack_before and marks:
            items = count - marks.pop()  # no opcode pushes more than one item
        built += _built(name, argument, items)
        if built > limit:
            raise TooLarge


def _built(name: str, argument: Any, items: int) -> int:
    """At most what the unpickler allocates for an opcode: a reference on its stack and in a
    container, the object it makes and its argument, the room of the ``items`` it puts in a
    set or dict."""
    size = 16 + _OBJECT_SIZES.get(name, 0) + _ITEM_SIZES.get(name, 0) * items
    return size if argument is None else size + sys.getsizeof(argument)


_REFUSED_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "PERSID", "BINPERSID"}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
# What the containers these opcodes make take, empty (with the garbage collector's header);
# a dict's first item allocates its table.
_OBJECT_SIZES = {
    **dict.fromkeys(("EMPTY_SET", "FROZENSET"), 232),
    **dict.fromkeys(("EMPTY_DICT", "DICT"), 80),
    **dict.fromkeys(("EMPTY_LIST", "LIST", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"), 80),
    "SETITEM": 128,
}
# The room an item takes in a set's table (up to 8 slots of 16 bytes just after it grows), or
# a key or value in a dict's, for each opcode since the MARK.
_ITEM_SIZES = {"ADDITEMS": 128, "FROZENSET": 128, "SETITEMS": 64, "DICT": 64}


def _opcodes(data: bytes) -> Iterator[tuple[pickletools.OpcodeInfo, Any]]:
    """Each opcode and its argument; what the unpickler would stop at as corrupt raises
    :class:`pickle.UnpicklingError` (a length past the end too: the opcodes are read, not
    allocated)."""
    try:
        for opcode, argument, _position in pickletools.genops(data):
            yield opcode, argument
    except Exception as exc:  # ValueError mostly, as pickletools reports a corrupt pickle
        raise pickle.UnpicklingError(str(exc)) from exc


def _too_large_for(data: bytes, limit: int) -> Decoded:
    # Translators: shown instead of a stored value; "serializer" is Celery's serializer name
    # (yaml, …), "size" e.g. "64.0 KB".
    problem = _("over %(size)s of %(serializer)s: too large to decode here")
    return _preview(
        data, problem % {"size": _size(limit), "serializer": app_settings.result_serializer}
    )


def _too_large(data: bytes, limit: int, size: int | None = None) -> Decoded:
    # Translators: shown instead of a value that would take more than "size" (e.g. "1.0 MB")
    # to decode: a compressed value expanded, or a pickle's objects built.
    problem = _("expands to more than %(size)s: too large to decode here")
    return _preview(data, problem % {"size": _size(limit)}, size)


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


_JSON = json.JSONEncoder(ensure_ascii=False, indent=2, sort_keys=True, default=repr)


def _pretty(value: Any) -> tuple[str, int] | None:
    """The first MAX_TEXT characters of ``value`` as indented JSON (what JSON has no type for
    as its repr), or as its repr where JSON cannot write it, and how many more there are;
    ``None`` if it holds an int longer than Python writes in decimal (4,300 digits)."""
    try:
        try:
            return _cut(_JSON.iterencode(value))
        except TypeError:  # keys JSON cannot hold (a tuple) or sort (1 and "1")
            return _cut(iter((repr(value),)))
    except ValueError:
        return None


def _cut(chunks: Iterator[str]) -> tuple[str, int]:
    """The text of ``chunks`` up to MAX_TEXT, and the count of characters past it: text past
    it is counted, never kept."""
    text = io.StringIO()
    length, kept = 0, MAX_TEXT * decode_limit() // DECODE_LIMIT
    for chunk in chunks:
        if length < kept:
            text.write(chunk[: kept - length])
        length += len(chunk)
    return text.getvalue(), max(length - kept, 0)


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
