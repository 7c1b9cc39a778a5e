"""How pysyncobj encodes what it sends and stores, made cheap: measured costs, on the 2-core machine, that sat on
every Raft message and every restart.

- Messages: pysyncobj pickles each message, compresses it with zlib (level 3), encrypts it. zlib.compress costs
  60-80 us even for a 600-byte message (level 0 too: it sets up a deflate state each call), more than the rest of
  the message's handling, on the leader's and the follower's critical path. Here `compress` writes a message
  under COMPRESS_FROM bytes as a zlib stream of stored (uncompressed) blocks, about 1 us; every receiver, an
  older one included, reads it with zlib.decompress as before. A bigger message is still compressed (level 1):
  Kubernetes objects shrink several times, and each byte saved is a byte less to encrypt (Fernet: about 4 ms a
  MB each way), copy through pysyncobj's buffers and send.
- Pickles: pysyncobj pickles with protocol 2, which has no bytes type: every bytes object (each command in a
  message, each snapshot blob) goes through a latin-1 str and back, about 25 ms per MB each way. Protocol 5
  writes bytes as they are. Readers take any protocol, so journals and snapshots of either kind still load.
- Snapshots: pysyncobj gzips its snapshot file (level 9: seconds of CPU for a large state). `snapshot_file`
  writes it plain (the state machine packs its keys itself, kvstore/snapshot_state.py) and still reads a gzipped
  one, from an older version.

`install()` patches pysyncobj 0.3.17's module-level names; kvstore/replica.py calls it once, at import.
"""
from __future__ import annotations

import contextlib
import gzip
import pickle
import struct
import types
import zlib

import pysyncobj.pickle as _pickle_module
import pysyncobj.serializer as _serializer_module
import pysyncobj.tcp_connection as _tcp_module

COMPRESS_FROM = 16 << 10  # bytes: smaller messages go in stored blocks
_STORED_BLOCK = 65535  # the most bytes a stored deflate block holds
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, no dictionary, "fastest" (the check bits make it divisible by 31)


def compress(data: bytes, level: int = 1) -> bytes:
    """pysyncobj's zlib.compress for messages (it asks for level 3)."""
    return stored_zlib(data) if len(data) < COMPRESS_FROM else zlib.compress(data, 1)


def stored_zlib(data: bytes) -> bytes:
    """A zlib stream (RFC 1950) of `data` in stored deflate blocks (RFC 1951 §3.2.4): zlib.decompress reads it."""
    view = memoryview(data)
    parts = [_ZLIB_HEADER]
    start = 0
    while True:
        chunk = view[start:start + _STORED_BLOCK]
        start += len(chunk)
        last = start >= len(data)
        parts.append(struct.pack("<BHH", last, len(chunk), len(chunk) ^ 0xFFFF))
        parts.append(chunk)
        if last:
            break
    parts.append(struct.pack(">I", zlib.adler32(data)))
    return b"".join(parts)


def snapshot_file(fileobj, mode: str = "rb"):
    """What pysyncobj wraps its snapshot file in, where it would gzip it."""
    if "r" in mode:
        magic = fileobj.read(2)
        fileobj.seek(0)
        if magic == b"\x1f\x8b":
            return gzip.GzipFile(fileobj=fileobj, mode="rb")
    return contextlib.nullcontext(fileobj)


def read_snapshot(path: str):
    """What pysyncobj's serializer reads from its snapshot file, read from `path` (a received snapshot, before it
    is renamed into place)."""
    with open(path, "rb") as f, snapshot_file(f) as g:
        return _pickle_module.load(g)


def install() -> None:
    _tcp_module.zlib = types.SimpleNamespace(compress=compress, decompress=zlib.decompress)
    setattr(_pickle_module, "__protocol", pickle.HIGHEST_PROTOCOL)  # a module global, read by dump and dumps
    _serializer_module.gzip = types.SimpleNamespace(GzipFile=snapshot_file)
