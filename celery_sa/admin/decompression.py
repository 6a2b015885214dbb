"""Compressed payloads (Celery 5.7's ``result_compression``) expanded with a cap on what
they produce: a few hundred stored bytes can expand to gigabytes, so every method runs in
steps and stops at the cap instead of expanding the whole."""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from functools import partial
from typing import Any

COMPRESSED = b"\x00celery-compressed\x00"  # Celery 5.7's marker, then the method's type


class TooLarge(ValueError):
    """The payload expands to more than the cap."""


class UnknownMethod(ValueError):
    """A compression method that cannot be expanded within a cap here."""


def _zlib(body: bytes, cap: int) -> bytes:
    expander = zlib.decompressobj()
    # Asking for one byte more than the cap tells a payload at the cap from a larger one.
    out = expander.decompress(body, cap + 1)
    if len(out) > cap or expander.unconsumed_tail:
        raise TooLarge
    out += expander.flush(cap + 1 - len(out))
    if len(out) > cap:
        raise TooLarge
    return out


def _stepwise(make: Callable[[], Any]) -> Callable[[bytes, int], bytes]:
    """bz2, lzma and zstd expanders: ``decompress(data, max_length)`` with ``eof``. Each
    stream of a payload that holds several is expanded, as ``bz2.decompress`` (kombu's)
    does, within one cap."""

    def expand(body: bytes, cap: int) -> bytes:
        out = bytearray()
        while True:
            expander = make()
            out += expander.decompress(body, cap + 1 - len(out))
            if len(out) > cap or not (expander.eof or expander.needs_input):
                raise TooLarge
            if not expander.eof:
                raise EOFError("the compressed data ends before its end-of-stream marker")
            body = expander.unused_data
            if not body:
                return bytes(out)

    return expand


# An xz or lzma header names the dictionary its decoder allocates before any output, up to
# 4 GB; kombu writes preset 6 (an 8 MiB dictionary: 9 MiB to decode).
LZMA_MEMORY = 16 * 1024 * 1024

EXPANDERS: dict[str, Callable[[bytes, int], bytes]] = {
    "application/x-gzip": _zlib,
    "application/x-bz2": _stepwise(bz2.BZ2Decompressor),
    "application/x-lzma": _stepwise(partial(lzma.LZMADecompressor, memlimit=LZMA_MEMORY)),
}
try:  # kombu registers zstd where the module is there (Python 3.14, or backports.zstd)
    from compression.zstd import ZstdDecompressor  # type: ignore[import-not-found]
except ImportError:
    try:
        from backports.zstd import ZstdDecompressor  # type: ignore[import-not-found]
    except ImportError:
        ZstdDecompressor = None
if ZstdDecompressor is not None:
    EXPANDERS["application/zstd"] = _stepwise(ZstdDecompressor)


def is_compressed(payload: bytes) -> bool:
    return payload.startswith(COMPRESSED)


def expand(payload: bytes, cap: int) -> bytes:
    """``payload`` as stored, or expanded when it carries Celery's compression marker.

    Raises :class:`TooLarge` when it would expand past ``cap`` bytes, and
    :class:`UnknownMethod` for a method this process cannot expand in steps (brotli's
    library has no output limit); a corrupt body raises its library's error.
    """
    if not is_compressed(payload):
        return payload
    method, _nul, body = payload[len(COMPRESSED) :].partition(b"\x00")
    # Celery writes the content type kombu's compress() returns (application/x-bz2, …).
    name = method.decode("ascii", "replace")
    expander = EXPANDERS.get(name)
    if expander is None:
        raise UnknownMethod(name)
    return expander(body, cap)
