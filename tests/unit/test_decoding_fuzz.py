"""The decoders fuzzed (issue 22): random bytes, and valid payloads of every serializer and
compression Celery 5.7 may store, mutated (bits flipped, cut, bytes put in or taken out, two
spliced), under each serializer setting, never make decode() raise, show unbounded text or
take unbounded memory; unmutated, they decode to their value. Bombs, small values that
expand to far more, are decoded within the same bound."""

from __future__ import annotations

import importlib.util
import json
import lzma
import pickle
import pickletools
from collections.abc import Callable
from functools import cache, partial
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu.compression import compress, encoders
from kombu.serialization import dumps

from celery_sa.admin.decoding import (
    DECODE_LIMIT,
    MAX_TEXT,
    PRINT_LIMIT,
    VALUE_LIMIT,
    Decoded,
    decode,
)
from tests.support.memory import traced_peak

pytestmark = pytest.mark.slow  # thousands of generated values each

# The most one decode may take, whatever it reads.
PEAK_LIMIT = (
    3 * DECODE_LIMIT  # the stored bytes, a copy, what they expand to
    # The value: a pickle's opcodes are checked to build at most VALUE_LIMIT; JSON's parser
    # builds up to 32 bytes a stored byte (a dict in a dict from '{"":{}},' or '[{}],').
    + max(VALUE_LIMIT, 36 * DECODE_LIMIT)
    # Its text, printed only if at most PRINT_LIMIT characters, at up to 4 bytes each: a
    # chunk (a repr) and its JSON escaping, and the MAX_TEXT kept.
    + 4 * (2 * PRINT_LIMIT + MAX_TEXT)
)
# The text kept, then "\n… (1023.9 MB more)".
TEXT_LIMIT = MAX_TEXT + 32
COMPRESSED = b"\x00celery-compressed\x00"  # Celery 5.7's marker, then the method's type
# The settings that choose how values are read: Celery's default (json), json accepting
# pickle, pickle, and the serializers whose library may be missing here.
SETTINGS = [
    {},
    {"CELERY_RESULT_SERIALIZER": "json", "CELERY_ACCEPT_CONTENT": ["json", "pickle"]},
    {"CELERY_RESULT_SERIALIZER": "pickle", "CELERY_ACCEPT_CONTENT": ["pickle"]},
    {"CELERY_RESULT_SERIALIZER": "msgpack", "CELERY_ACCEPT_CONTENT": ["msgpack", "json"]},
    {"CELERY_RESULT_SERIALIZER": "yaml", "CELERY_RESULT_ACCEPT_CONTENT": ["yaml", "pickle"]},
]
# Every compression kombu can write here (Celery 5.7's result_compression), by an alias
# Celery accepts; zstd where its module is installed.
METHODS = {
    name: content_type
    for name, content_type in {
        "zlib": "application/x-gzip",
        "gzip": "application/x-gzip",
        "bzip2": "application/x-bz2",
        "lzma": "application/x-lzma",
        "zstd": "application/zstd",
    }.items()
    if content_type in encoders()
}
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def json_values_of(integers: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    """JSON's values (no NaN: it equals nothing)."""
    return st.recursive(
        st.none() | st.booleans() | integers | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=12,
    )


json_values = json_values_of(st.integers())
# msgpack writes ints of up to 64 bits.
msgpack_values = json_values_of(st.integers(-(2**63), 2**64 - 1))
# What the plain unpickler builds: JSON's values, tuples, bytes, sets and frozensets, and
# keys of any of them that hash.
keys = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=4,
)
plain_values = st.recursive(
    keys | st.binary(max_size=16).map(bytearray),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(keys, inner, max_size=4)
        | st.sets(keys, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """A valid stored value: JSON, or a pickle of protocol 0 to 5, maybe compressed."""
    if draw(st.booleans()):
        payload = json.dumps(draw(json_values)).encode()
    else:
        payload = pickle.dumps(draw(plain_values), protocol=draw(st.integers(0, 5)))
    if draw(st.booleans()):
        payload = compressed(payload, draw(st.sampled_from(sorted(METHODS))))
    return payload


# Bytes that mean much to a decoder: pickle opcodes with lengths and memo indexes near 2**32
# and 2**64, the marker of a pickle and of a compressed value, JSON's deep nesting.
TOKENS = [
    b"\x80\x05",
    b"\x8e\xff\xff\xff\xff\xff\xff\xff\x00",  # BINBYTES8
    b"\x96\x00\x00\x00\x40\x00\x00\x00\x00",  # BYTEARRAY8
    b"\x8d\xff\xff\xff\x7f\x00\x00\x00\x00",  # BINUNICODE8
    b"\x95\xff\xff\xff\xff\x00\x00\x00\x00",  # FRAME
    b"r\xff\xff\xff\x0f",  # LONG_BINPUT
    b"p99999999\n",  # PUT
    b"h\x00",  # BINGET
    b"\x8b\xff\xff\x00\x00",  # LONG4
    b"2" * 16,  # DUP
    b"(" * 16,  # MARK
    b"\x8f",  # EMPTY_SET
    b"]" * 64 + b"a" * 63,
    COMPRESSED + b"application/x-gzip\x00",
    COMPRESSED + b"application/x-brotli\x00",
    b"[" * 2000,
    b'{"__type__": "decimal", "__value__": "1e999999999"}',
    b"1" * 5000,
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid payload, then one to four mutations."""
    data = bytearray(draw(payloads()))
    for _ in range(draw(st.integers(1, 4))):
        mutation = draw(st.sampled_from(sorted(MUTATIONS)))
        at = draw(st.integers(0, len(data)))
        MUTATIONS[mutation](data, at, draw)
    return bytes(data)


def flip(data: bytearray, at: int, draw: st.DrawFn) -> None:
    if data:
        data[min(at, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))


def truncate(data: bytearray, at: int, draw: st.DrawFn) -> None:
    del data[at:]


def insert(data: bytearray, at: int, draw: st.DrawFn) -> None:
    data[at:at] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=16))


def delete(data: bytearray, at: int, draw: st.DrawFn) -> None:
    del data[at : at + draw(st.integers(1, 16))]


def splice(data: bytearray, at: int, draw: st.DrawFn) -> None:
    other = draw(payloads())
    data[at:] = other[draw(st.integers(0, len(other))) :]


MUTATIONS: dict[str, Callable[[bytearray, int, st.DrawFn], None]] = {
    function.__name__: function for function in (flip, truncate, insert, delete, splice)
}


def compressed(payload: bytes, method: str) -> bytes:
    """``payload`` as Celery 5.7 stores it compressed with ``method``."""
    body, content_type = compress(payload, method)  # type: ignore[no-untyped-call]
    return COMPRESSED + str(content_type).encode() + b"\x00" + bytes(body)


def measured(raw: bytes) -> tuple[Decoded | None, int]:
    """``decode(raw)`` and the most memory it held at once."""
    return traced_peak(partial(decode, raw))


def assert_bounded(raw: bytes, decoded: Decoded | None, peak: int) -> Decoded:
    assert isinstance(decoded, Decoded)
    assert len(decoded.text) <= TEXT_LIMIT
    assert decoded.size == len(raw)
    assert not decoded.problem or decoded.value is None
    assert peak < PEAK_LIMIT, peak
    return decoded


@FUZZ
@given(raw=st.binary(max_size=4096) | mutated(), setting=st.sampled_from(SETTINGS))
def test_no_stored_bytes_make_decode_raise_show_unbounded_text_or_hold_unbounded_memory(
    raw: bytes, setting: dict[str, Any]
) -> None:
    with override_settings(**setting):
        assert_bounded(raw, *measured(raw))


@FUZZ
@given(
    body=st.binary(max_size=1024) | mutated(),
    content_type=st.sampled_from([*METHODS.values(), "application/x-brotli", "x\xff"]),
)
def test_no_body_behind_the_compression_marker_makes_decode_raise_or_hold_unbounded_memory(
    body: bytes, content_type: str
) -> None:
    raw = COMPRESSED + content_type.encode("utf-8", "surrogateescape") + b"\x00" + body
    assert_bounded(raw, *measured(raw))


@settings(FUZZ, max_examples=300)
@given(value=plain_values, protocol=st.integers(0, 5), setting=st.sampled_from(SETTINGS))
def test_a_pickle_of_plain_values_decodes_to_its_value_under_every_setting(
    value: Any, protocol: int, setting: dict[str, Any]
) -> None:
    raw = pickle.dumps(value, protocol=protocol)
    with override_settings(**setting):
        decoded = assert_bounded(raw, *measured(raw))
    if setting.get("CELERY_RESULT_SERIALIZER") != "pickle" and protocol < 2:
        return  # without the marker, only the pickle setting reads it as a pickle
    if any(op.name in ("GLOBAL", "STACK_GLOBAL") for op, _, _ in pickletools.genops(raw)):
        # Protocols before 4 write sets (before 3 bytes) as calls, which are never made.
        assert decoded.problem.startswith("pickle of "), decoded.problem
    else:
        assert decoded.problem == ""
        assert decoded.value == value


@settings(FUZZ, max_examples=200)
@given(value=json_values, method=st.sampled_from(sorted(METHODS)) | st.none())
def test_json_decodes_to_its_value_plain_or_compressed(value: Any, method: str | None) -> None:
    raw = json.dumps(value).encode()
    raw = compressed(raw, method) if method else raw
    for setting in SETTINGS[:2]:
        with override_settings(**setting):
            decoded = assert_bounded(raw, *measured(raw))
        assert decoded.problem == ""
        assert decoded.value == value


@pytest.mark.parametrize("serializer", ["msgpack", "yaml"])
@settings(FUZZ, max_examples=50)
@given(value=msgpack_values)
def test_msgpack_and_yaml_decode_to_their_value_or_say_they_are_not_installed(
    serializer: str, value: Any
) -> None:
    installed = importlib.util.find_spec(serializer) is not None
    raw = dumps(value, serializer="json")[2].encode()  # type: ignore[no-untyped-call]
    if installed:
        payload = dumps(value, serializer=serializer)[2]  # type: ignore[no-untyped-call]
        raw = payload if isinstance(payload, bytes) else payload.encode()
    with override_settings(CELERY_RESULT_SERIALIZER=serializer, CELERY_ACCEPT_CONTENT=[serializer]):
        decoded = assert_bounded(raw, *measured(raw))
    if installed:
        assert decoded.problem == ""
        assert decoded.value == value
    else:
        assert decoded.problem == f"cannot be decoded as {serializer}: SerializerNotInstalled"


def test_zstd_is_expanded_where_its_module_is_installed_and_named_where_not() -> None:
    raw = json.dumps({"ok": list(range(50))}).encode()
    if "zstd" in METHODS:
        decoded = decode(compressed(raw, "zstd"))
        assert decoded is not None and decoded.value == {"ok": list(range(50))}
    else:
        decoded = decode(COMPRESSED + b"application/zstd\x00(\xb5/\xfd\x00X\x11\x00\x00")
        assert decoded is not None
        assert decoded.problem == "cannot be decompressed: UnknownMethod"


@cache
def zeros(method: str) -> bytes:
    """100 MiB of zeros compressed with ``method``: from 15 KB (lzma) down to 113 bytes."""
    return compressed(bytes(100 << 20), method)


def lzma_dictionary_of_4_gib() -> bytes:
    body = lzma.compress(b"{}", format=lzma.FORMAT_ALONE)
    return COMPRESSED + b"application/x-lzma\x00" + body[:1] + b"\xff\xff\xff\xff" + body[5:]


def nested(depth: int, fanout: int) -> Any:
    value: Any = "x" * 10
    for _ in range(depth):
        value = [value] * fanout
    return value


BOMBS: dict[str, Callable[[], bytes]] = {
    **{f"{method}: 100 MiB of zeros": partial(zeros, method) for method in METHODS},
    "lzma: a header naming a 4 GiB dictionary": lzma_dictionary_of_4_gib,
    # Pickles: lengths the unpickler allocates before it reads them, memo indexes that size
    # its memo, one byte making a 232-byte set, values that print as gigabytes.
    "BINBYTES8 of 1 GiB": lambda: b"\x80\x04\x8e" + (1 << 30).to_bytes(8, "little") + b"x.",
    "BYTEARRAY8 of 1 GiB": lambda: b"\x80\x05\x96" + (1 << 30).to_bytes(8, "little") + b"x.",
    "LONG_BINPUT at 2**28": lambda: b"\x80\x04N" + b"r" + (1 << 28).to_bytes(4, "little") + b".",
    "PUT at 10**9": lambda: b"\x80\x02Np1000000000\n.",
    "FRAME of 2**40 bytes": lambda: b"\x80\x04\x95" + (1 << 40).to_bytes(8, "little") + b"N.",
    "a million empty sets": lambda: b"\x80\x04](" + b"\x8f" * (DECODE_LIMIT - 8) + b"e.",
    "200,000 DUPs": lambda: b"\x80\x04](N" + b"2" * 200_000 + b"e.",
    "a string held 100,000 times": lambda: pickle.dumps(["x" * 100_000] * 100_000, protocol=4),
    "a frozenset of a tuple held 50 times": lambda: pickle.dumps(
        frozenset({("😀" * 100_000,) * 50}), protocol=4
    ),
    "2**60 strings from 385 bytes": lambda: pickle.dumps(nested(60, 2), protocol=4),
    "10,000 nested lists": lambda: b"\x80\x02" + b"]" * 10_000 + b"a" * 9_999 + b".",
    "a key of 10,000 nested tuples": lambda: b"\x80\x04})" + b"\x85" * 10_000 + b"K\x01s.",
    "an int of 800,000 bits": lambda: (
        b"\x80\x02\x8b" + (100_000).to_bytes(4, "little") + b"\x7f" * 100_000 + b"."
    ),
    # JSON: the most objects a stored byte makes, nesting past the parser's recursion limit,
    # and indentation 99 levels deep.
    "a dict of a dict, 130,000 times": lambda: b"[" + b",".join([b'{"":{}}'] * 130_000) + b"]",
    "500,000 nested arrays": lambda: b"[" * 500_000 + b"]" * 500_000,
    "400,000 numbers 99 levels deep": lambda: b"[" * 99 + b",".join([b"1"] * 400_000) + b"]" * 99,
}


@pytest.mark.parametrize("bomb", BOMBS)
def test_a_bomb_is_refused_within_the_memory_bound(bomb: str) -> None:
    raw = BOMBS[bomb]()
    assert len(raw) <= DECODE_LIMIT
    decoded = assert_bounded(raw, *measured(raw))
    assert decoded.problem, decoded.text[:200]


# Values that print long but within PRINT_LIMIT: shown, cut at MAX_TEXT.
LONG_VALUES: dict[str, Callable[[], bytes]] = {
    "a tuple of 4 M emoji characters": lambda: pickle.dumps(("😀" * 100_000,) * 40, protocol=4),
    "a frozenset of it": lambda: pickle.dumps(frozenset({("😀" * 100_000,) * 40}), protocol=4),
    "450,000 numbers": lambda: json.dumps([1] * 450_000, separators=(",", ":")).encode(),
    "a string of 1 M characters": lambda: json.dumps("x" * (DECODE_LIMIT - 2)).encode(),
}


@pytest.mark.parametrize("value", LONG_VALUES)
def test_a_value_printing_long_is_cut_within_the_memory_bound(value: str) -> None:
    raw = LONG_VALUES[value]()
    decoded = assert_bounded(raw, *measured(raw))
    assert decoded.problem == ""
    assert len(decoded.text) > MAX_TEXT or value == "a string of 1 M characters"
