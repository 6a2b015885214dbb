"""Stored values made readable: JSON, compressed payloads, plain pickles read without running
them, corrupt bytes previewed, large values never decoded."""

from __future__ import annotations

import bz2
import json
import pickle
import tracemalloc
import zlib
from datetime import datetime

from django.test import override_settings
from kombu.compression import compress

from celery_sa.admin.decoding import DECODE_LIMIT, PREVIEW_BYTES, decode

# Celery 5.7's marker of a compressed result, then the compression's content type.
COMPRESSED = b"\x00celery-compressed\x00"


def compressed(payload: bytes, method: str) -> bytes:
    body, content_type = compress(payload, method)  # type: ignore[no-untyped-call]
    return COMPRESSED + str(content_type).encode() + b"\x00" + bytes(body)


def test_a_json_value_is_shown_pretty_printed_with_sorted_keys() -> None:
    raw = '{"b": [1, 2], "a": "café"}'.encode()
    decoded = decode(raw)
    assert decoded is not None
    assert decoded.value == {"a": "café", "b": [1, 2]}
    assert decoded.text == '{\n  "a": "café",\n  "b": [\n    1,\n    2\n  ]\n}'
    assert decoded.size == len(raw) == 27
    assert decoded.problem == ""


def test_a_missing_value_stays_missing() -> None:
    assert decode(None) is None


def test_a_compressed_result_is_unpacked_and_its_stored_size_kept() -> None:
    payload = json.dumps({"rows": list(range(200))}).encode()
    for method in ("zlib", "bzip2"):
        raw = compressed(payload, method)
        decoded = decode(raw)
        assert decoded is not None
        assert decoded.value == {"rows": list(range(200))}, method
        assert decoded.problem == ""
        assert decoded.size == len(raw) < len(payload)


def test_a_pickle_of_plain_values_is_read() -> None:
    value = {"answer": 42, "pair": (1, 2), "names": ["a", None, True, 1.5]}
    for protocol in (2, 4, 5):
        decoded = decode(pickle.dumps(value, protocol=protocol))
        assert decoded is not None
        assert decoded.value == value, protocol
        assert decoded.problem == ""
    # Sets and bytes have opcodes of their own from protocol 4 (and 3) on.
    decoded = decode(pickle.dumps({"tags": {"x"}, "raw": b"\x00"}, protocol=4))
    assert decoded is not None
    assert decoded.value == {"tags": {"x"}, "raw": b"\x00"}


def test_a_pickle_that_would_build_an_object_is_refused_and_names_it() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5)
    # Protocol 2 names globals with GLOBAL (and builds the date's bytes with a function),
    # protocol 4 with STACK_GLOBAL.
    for protocol, names in ((2, "_codecs.encode, datetime.datetime"), (4, "datetime.datetime")):
        raw = pickle.dumps({"when": moment}, protocol=protocol)
        decoded = decode(raw)
        assert decoded is not None
        assert decoded.problem == f"pickle of {names} (not executed)"
        assert decoded.value is None
        assert decoded.text == repr(raw)  # binary: escaped, never raw
        assert decoded.size == len(raw)


def test_pickle_as_the_result_serializer_still_never_unpickles_objects() -> None:
    with override_settings(CELERY_RESULT_SERIALIZER="pickle", CELERY_ACCEPT_CONTENT=["pickle"]):
        plain = decode(pickle.dumps([1, "two"], protocol=4))
        refused = decode(pickle.dumps(datetime(2026, 1, 2), protocol=4))
    assert plain is not None and plain.value == [1, "two"]
    assert refused is not None
    assert refused.problem == "pickle of datetime.datetime (not executed)"


def test_a_truncated_pickle_is_reported_as_corrupt() -> None:
    decoded = decode(pickle.dumps({"answer": 42}, protocol=4)[:-4])
    assert decoded is not None
    assert decoded.problem == "corrupt pickle: UnpicklingError"
    assert decoded.value is None


def test_bytes_no_serializer_reads_are_previewed_with_the_reason() -> None:
    decoded = decode(b"\xff\xfe not json")
    assert decoded is not None
    assert decoded.problem == "cannot be decoded as json: DecodeError"
    assert decoded.text == repr(b"\xff\xfe not json")
    assert decoded.size == 11


def test_a_long_undecodable_value_is_cut_and_says_how_much_is_left() -> None:
    decoded = decode(b"{" * (PREVIEW_BYTES + 1))
    assert decoded is not None
    assert decoded.text == "{" * PREVIEW_BYTES + "\n… (1 byte more)"
    decoded = decode(b"{" * (PREVIEW_BYTES + 2048))
    assert decoded is not None
    assert decoded.text.endswith("\n… (2.0 KB more)")


def test_a_value_over_the_limit_is_previewed_never_decoded() -> None:
    head = b'"' + b"x" * 9
    decoded = decode(head, size=DECODE_LIMIT + 1)
    assert decoded is not None
    assert decoded.problem == "1.0 MB: too large to decode here"
    assert decoded.text == '"xxxxxxxxx\n… (1020.0 KB more)'
    assert decoded.size == DECODE_LIMIT + 1
    assert decoded.value is None


def test_a_value_of_exactly_the_limit_is_decoded() -> None:
    decoded = decode(b'"ok"', size=DECODE_LIMIT)
    assert decoded is not None
    assert decoded.value == "ok"
    assert decoded.problem == ""


def test_a_compression_bomb_is_stopped_at_the_limit_in_bounded_memory() -> None:
    # 100 MiB of "0" compress to about 100 KB with zlib (a few hundred bytes with bz2).
    chunk = b"0" * (1024 * 1024)
    for method in (zlib, bz2):
        packer = method.compressobj() if method is zlib else method.BZ2Compressor()
        body = b"".join(packer.compress(chunk) for _ in range(100)) + packer.flush()
        content_type = "application/x-gzip" if method is zlib else "application/x-bz2"
        bomb = COMPRESSED + content_type.encode() + b"\x00" + body
        tracemalloc.start()
        decoded = decode(bomb)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert decoded is not None
        assert decoded.problem == "expands to more than 1.0 MB: too large to decode here"
        assert decoded.size == len(bomb)
        assert peak < 8 * 1024 * 1024, (method.__name__, peak)


def test_a_compressed_value_of_exactly_the_limit_is_decoded() -> None:
    text = json.dumps("x" * (DECODE_LIMIT - 2)).encode()  # the quotes make the limit
    assert len(text) == DECODE_LIMIT
    decoded = decode(compressed(text, "zlib"))
    assert decoded is not None and decoded.problem == ""
    assert decoded.value == "x" * (DECODE_LIMIT - 2)
    over = decode(compressed(json.dumps("x" * (DECODE_LIMIT - 1)).encode(), "zlib"))
    assert over is not None
    assert over.problem == "expands to more than 1.0 MB: too large to decode here"


def test_an_unknown_or_corrupt_compression_is_previewed() -> None:
    unknown = decode(COMPRESSED + b"application/x-brotli\x00\x8b\x03\x80hello\x03")
    assert unknown is not None
    assert unknown.problem == "cannot be decompressed: UnknownMethod"
    corrupt = decode(COMPRESSED + b"application/x-gzip\x00not zlib at all")
    assert corrupt is not None
    assert corrupt.problem == "cannot be decompressed: error"


def test_a_deeply_nested_pickle_is_previewed_not_printed() -> None:
    # 100,000 nested lists (200 KB), written as opcodes (pickle.dumps itself would recurse):
    # 100,000 EMPTY_LIST, then APPENDs that put each in the one below. json.dumps (the page,
    # the export) would pass the recursion limit.
    raw = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."
    decoded = decode(raw)
    assert decoded is not None
    assert decoded.problem == "nested deeper than 100 levels: not shown"
    assert decoded.value is None
    shallow = decode(pickle.dumps([[[[1]]]], protocol=4))
    assert shallow is not None and shallow.value == [[[[1]]]]
