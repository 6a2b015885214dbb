"""Stored values made readable: JSON, compressed payloads, plain pickles read without running
them, corrupt bytes previewed, large values never decoded."""

from __future__ import annotations

import bz2
import json
import lzma
import pickle
import zlib
from datetime import datetime
from functools import partial

import pytest
from django.test import override_settings
from kombu.compression import compress

from celery_sa.admin.decoding import DECODE_LIMIT, PREVIEW_BYTES, decode
from tests.support.memory import traced_peak

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


@pytest.mark.slow
def test_a_compression_bomb_is_stopped_at_the_limit_in_bounded_memory() -> None:
    # 100 MiB of "0" compress to about 100 KB with zlib (a few hundred bytes with bz2).
    chunk = b"0" * (1024 * 1024)
    for method in (zlib, bz2):
        packer = method.compressobj() if method is zlib else method.BZ2Compressor()
        body = b"".join(packer.compress(chunk) for _ in range(100)) + packer.flush()
        content_type = "application/x-gzip" if method is zlib else "application/x-bz2"
        bomb = COMPRESSED + content_type.encode() + b"\x00" + body
        decoded, peak = traced_peak(partial(decode, bomb))
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


def test_every_stream_of_a_multi_stream_payload_is_expanded_as_kombu_does() -> None:
    # bz2.decompress and lzma.decompress (kombu's) read every stream; so does the admin,
    # within the same 1 MB for all of them.
    for module, content_type in ((bz2, "application/x-bz2"), (lzma, "application/x-lzma")):
        body = module.compress(b'["first", ') + module.compress(b'"second"]')
        decoded = decode(COMPRESSED + content_type.encode() + b"\x00" + body)
        assert decoded is not None and decoded.value == ["first", "second"], content_type
        half = module.compress(b"0" * (DECODE_LIMIT // 2 + 1))
        over = decode(COMPRESSED + content_type.encode() + b"\x00" + half + half)
        assert over is not None
        assert over.problem == "expands to more than 1.0 MB: too large to decode here"


def test_a_truncated_stream_is_corrupt_not_shown_in_part() -> None:
    body = bz2.compress(json.dumps(list(range(1000))).encode())
    decoded = decode(COMPRESSED + b"application/x-bz2\x00" + body[:-10])
    assert decoded is not None
    assert decoded.problem == "cannot be decompressed: EOFError"


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


MB = 1024 * 1024


def test_a_pickle_naming_a_length_past_its_end_is_corrupt_and_allocates_nothing() -> None:
    # BINBYTES8 and BYTEARRAY8 of 1 GiB, in 14 bytes: the unpickler allocated the GiB before
    # finding the bytes missing.
    for opcode in (b"\x8e", b"\x96"):
        raw = b"\x80\x05" + opcode + (1 << 30).to_bytes(8, "little") + b"x."
        decoded, peak = traced_peak(partial(decode, raw))
        assert decoded is not None
        assert decoded.problem == "corrupt pickle: UnpicklingError"
        assert peak < MB, peak


def test_a_pickle_memo_index_past_those_set_is_corrupt_and_allocates_nothing() -> None:
    # LONG_BINPUT and PUT at 2**28: the unpickler's memo became an array that long (4 GiB).
    for put in (b"r" + (1 << 28).to_bytes(4, "little"), b"p268435456\n"):
        raw = b"\x80\x02N" + put + b"."
        decoded, peak = traced_peak(partial(decode, raw))
        assert decoded is not None
        assert decoded.problem == "corrupt pickle: UnpicklingError"
        assert peak < MB, peak
    # A pickler's own indexes, 0, 1, 2, …, are read (protocol 0 writes PUT, 2 BINPUT).
    for protocol in (0, 2):
        with override_settings(CELERY_RESULT_SERIALIZER="pickle"):
            shared = decode(pickle.dumps([["a"], "b", "b"] * 2, protocol=protocol))
        assert shared is not None and shared.value == [["a"], "b", "b"] * 2


def test_a_pickle_that_would_build_more_than_32_mb_is_not_loaded() -> None:
    # A million empty sets from a million bytes: 232 MB of sets.
    raw = b"\x80\x04](" + b"\x8f" * (DECODE_LIMIT - 8) + b"e."
    decoded, peak = traced_peak(partial(decode, raw))
    assert decoded is not None
    assert decoded.problem == "expands to more than 32.0 MB: too large to decode here"
    assert peak < 4 * MB, peak
    many = decode(pickle.dumps([set(), {1}] * 1000, protocol=4))
    assert many is not None and many.value == [set(), {1}] * 1000


def test_an_lzma_header_naming_a_4_gib_dictionary_is_refused_before_it_is_allocated() -> None:
    body = lzma.compress(b"{}", format=lzma.FORMAT_ALONE)  # .lzma: the dictionary's size, then
    raw = COMPRESSED + b"application/x-lzma\x00" + body[:1] + b"\xff\xff\xff\xff" + body[5:]
    decoded, peak = traced_peak(partial(decode, raw))
    assert decoded is not None
    assert decoded.problem == "cannot be decompressed: LZMAError"
    assert peak < MB, peak
    xz = decode(compressed(b'{"ok": true}', "lzma"))  # kombu's: 8 MiB of dictionary
    assert xz is not None and xz.value == {"ok": True}


@pytest.mark.slow
def test_a_value_that_would_print_as_far_more_than_is_kept_is_not_printed() -> None:
    # 200,000 references to one 200,000-character string (600 KB stored) print as 40 GB; a
    # list holding the one below twice, 40 levels deep (300 bytes), as 2**40 strings; 400,000
    # numbers 99 levels deep (800 KB of JSON) as 80 MB of indentation. The text was made
    # whole before it was cut (or never, for the 2**40).
    nested: object = "x"
    for _ in range(40):
        nested = [nested, nested]
    for raw in (
        pickle.dumps(["x" * 200_000] * 200_000, protocol=4),
        pickle.dumps(nested, protocol=4),
        b"[" * 99 + b",".join([b"1"] * 400_000) + b"]" * 99,
    ):
        decoded, peak = traced_peak(partial(decode, raw))
        assert decoded is not None
        assert decoded.problem == "too large to show here"
        assert peak < 8 * MB, peak


def test_a_number_python_will_not_print_is_not_shown_and_nothing_raises() -> None:
    # str() refuses ints of over 4,300 digits: a ValueError out of decode() before.
    decoded = decode(pickle.dumps({"n": 10**5000}, protocol=4))
    assert decoded is not None
    assert decoded.problem == "too large to show here"


def test_a_key_nested_past_the_limit_is_not_printed() -> None:
    # A dict whose key is 10,000 nested tuples: JSON refuses the key and repr() recursed past
    # Python's limit (a RecursionError out of decode() before).
    decoded = decode(b"\x80\x04})" + b"\x85" * 10_000 + b"K\x01s.")
    assert decoded is not None
    assert decoded.problem == "nested deeper than 100 levels: not shown"
    keyed = decode(pickle.dumps({(1, "a"): [2], frozenset({3}): None}, protocol=4))
    assert keyed is not None and keyed.problem == ""
    assert keyed.text == "{(1, 'a'): [2], frozenset({3}): None}"


def test_a_serializer_not_installed_here_is_named_not_raised() -> None:
    # As msgpack or yaml where the admin runs without them: SerializerNotInstalled was raised
    # before the value was read.
    with override_settings(CELERY_RESULT_SERIALIZER="no-such-serializer"):
        decoded = decode(b'{"a": 1}')
        pickled = decode(pickle.dumps({"a": 1}, protocol=4))
    assert decoded is not None
    assert decoded.problem == "cannot be decoded as no-such-serializer: SerializerNotInstalled"
    assert pickled is not None and pickled.value == {"a": 1}


def test_pickles_of_protocols_0_and_1_are_read_when_results_are_pickled() -> None:
    # They start without the marker of protocol 2: kombu refused them, and so they were shown
    # as "cannot be decoded as pickle: ContentDisallowed".
    value = {"answer": [42, "x", 1.5, None, True]}
    with override_settings(CELERY_RESULT_SERIALIZER="pickle", CELERY_ACCEPT_CONTENT=["pickle"]):
        for protocol in (0, 1):
            decoded = decode(pickle.dumps(value, protocol=protocol))
            assert decoded is not None and decoded.value == value, protocol


def test_a_compressed_pickle_or_undecodable_value_keeps_its_stored_size() -> None:
    pickled = compressed(pickle.dumps(list(range(300)), protocol=4), "zlib")
    decoded = decode(pickled)
    assert decoded is not None and decoded.value == list(range(300))
    assert decoded.size == len(pickled)
    undecodable = compressed(b"\xff not json", "bzip2")
    decoded = decode(undecodable)
    assert decoded is not None
    assert decoded.problem == "cannot be decoded as json: DecodeError"
    assert decoded.text == repr(b"\xff not json")  # the bytes expanded
    assert decoded.size == len(undecodable)


@override_settings(CELERY_RESULT_SERIALIZER="yaml", CELERY_RESULT_ACCEPT_CONTENT=["yaml"])
def test_a_yaml_value_over_64_kb_is_previewed_not_parsed() -> None:
    # PyYAML builds a node graph first: 256 KB took 78 MB and 13 s.
    decoded = decode(b"- " + b"[" * 70_000)
    assert decoded is not None
    assert decoded.problem == "over 64.0 KB of yaml: too large to decode here"
