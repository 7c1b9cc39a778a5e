"""SPDY/3.1 framing, sans I/O: what `kubectl port-forward` speaks inside its WebSocket (pure, no sockets).

kubectl 1.32 asks for the WebSocket subprotocol `SPDY/3.1+portforward.k8s.io` and then runs an ordinary SPDY/3.1
session over the socket's binary messages, taken as one byte stream (a frame may be cut across messages, or several
share one). Only what that session uses is here (draft 3 of the SPDY specification, sections 2.2 to 2.6):

    control frame  |1|version=3 (15)|type (16)|flags (8)|length (24)|payload...
    data frame     |0|stream id (31)          |flags (8)|length (24)|data...      flag 0x01 = FIN

    SYN_STREAM (1)  stream id, associated id, priority, slot, header block   the client opens a stream
    SYN_REPLY  (2)  stream id, header block                                  the server accepts it
    RST_STREAM (3)  stream id, status                                        either side abandons one
    SETTINGS   (4), WINDOW_UPDATE (9)                                        read and ignored, as Go's spdystream does
    PING       (6)  id                                                       echoed back
    GOAWAY     (7)  last good stream id, status                              the session ends
    HEADERS    (8)  stream id, header block

A header block is zlib-compressed with a dictionary the specification fixes (below), as one compression stream per
direction for the whole session: the decoder and the encoder each keep their zlib state from frame to frame.
Uncompressed it is `count (32)` then `name length (32), name, value length (32), value` per header, names lower
case, several values of one name joined by NUL.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
DATA = 0  # a Frame's kind for data frames (control frames have their type)
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FIN = 0x01
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL = 1, 2, 3, 5  # RST_STREAM statuses
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR = 0, 1
MAX_FRAME = 1 << 20  # kubectl's frames carry at most 32 KiB; a larger one is refused rather than buffered
MAX_HEADER_BLOCK = 64 << 10  # uncompressed

_WORDS = (
    *"options head post put delete trace accept accept-charset accept-encoding accept-language accept-ranges age "
     "allow authorization cache-control connection content-base content-encoding content-language content-length "
     "content-location content-md5 content-range content-type date etag expect expires from host if-match "
     "if-modified-since if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
     "proxy-authenticate proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
     "user-agent vary via warning www-authenticate method get status".split(),
    "200 OK", *"version HTTP/1.1 url public set-cookie keep-alive origin".split())
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 "
    "Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 "
    "Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept "
    "Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch"
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def _dictionary() -> bytes:
    """SPDY/3's zlib dictionary (specification section 2.6.10.1): 65 length-prefixed words, then a run of text."""
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()


DICTIONARY = _dictionary()


class SpdyError(Exception):
    """A frame the session cannot take: the session answers GOAWAY (protocol error) and ends."""


@dataclass
class Frame:
    kind: int  # a control frame's type, or 0 for DATA
    stream_id: int = 0
    flags: int = 0
    data: bytes = b""  # DATA's payload
    headers: dict[str, list[str]] = field(default_factory=dict)  # SYN_STREAM, SYN_REPLY, HEADERS
    value: int = 0  # RST_STREAM's and GOAWAY's status, PING's id, WINDOW_UPDATE's delta

    @property
    def fin(self) -> bool:
        return bool(self.flags & FIN)


class Decoder:
    """Bytes in, frames out: `feed` keeps a partial frame until the rest arrives."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            first, flags_length = struct.unpack_from(">II", self._buffer)
            length = flags_length & 0xFFFFFF
            if length > MAX_FRAME:
                raise SpdyError(f"a frame of {length} bytes (at most {MAX_FRAME})")
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            flags = flags_length >> 24
            if first & 0x80000000:
                frames.append(self._control(first, flags, payload))
            else:
                frames.append(Frame(DATA, _stream_id(first & 0x7FFFFFFF), flags, payload))
        return frames

    def _control(self, first: int, flags: int, payload: bytes) -> Frame:
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise SpdyError(f"SPDY version {version}; this server speaks SPDY/3.1")
        try:
            if kind == SYN_STREAM:
                stream_id, = struct.unpack_from(">I", payload)
                return Frame(kind, _stream_id(stream_id), flags, headers=self._headers(payload[10:]))
            if kind in (SYN_REPLY, HEADERS):
                stream_id, = struct.unpack_from(">I", payload)
                return Frame(kind, _stream_id(stream_id), flags, headers=self._headers(payload[4:]))
            if kind in (RST_STREAM, WINDOW_UPDATE, GOAWAY):
                stream_id, value = struct.unpack(">II", payload)
                return Frame(kind, stream_id & 0x7FFFFFFF, flags, value=value)
            if kind == PING:
                ping_id, = struct.unpack(">I", payload)
                return Frame(kind, flags=flags, value=ping_id)
            if kind == SETTINGS:
                return Frame(kind, flags=flags)
        except struct.error:
            raise SpdyError(f"a control frame of type {kind} with a {len(payload)}-byte payload") from None
        raise SpdyError(f"unknown control frame type {kind}")

    def _headers(self, block: bytes) -> dict[str, list[str]]:
        try:
            raw = self._zlib.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise SpdyError(f"a header block that does not decompress: {exc}") from None
        if self._zlib.unconsumed_tail:
            raise SpdyError(f"a header block larger than {MAX_HEADER_BLOCK} bytes")
        return parse_header_block(raw)


def parse_header_block(raw: bytes) -> dict[str, list[str]]:
    try:
        count, = struct.unpack_from(">I", raw)
        at, headers = 4, {}
        for _ in range(count):
            name, at = _string(raw, at)
            value, at = _string(raw, at)
            headers[name.lower()] = value.split("\0")
    except (struct.error, UnicodeDecodeError, ValueError):
        raise SpdyError("a malformed header block") from None
    return headers


def _string(raw: bytes, at: int) -> tuple[str, int]:
    length, = struct.unpack_from(">I", raw, at)
    end = at + 4 + length
    if end > len(raw):
        raise ValueError("past the block's end")
    return raw[at + 4:end].decode(), end


def _stream_id(value: int) -> int:
    if value == 0:
        raise SpdyError("stream id 0")
    return value


class Encoder:
    """Frames out as bytes; header blocks share this direction's zlib stream, so frames must be sent in the
    order they are encoded."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(9, zdict=DICTIONARY)

    def _header_block(self, headers: dict[str, list[str]]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for name, values in headers.items():
            for text in (name.lower(), "\0".join(values)):
                encoded = text.encode()
                raw += struct.pack(">I", len(encoded)) + encoded
        return self._zlib.compress(raw) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream_id: int, headers: dict[str, list[str]], *, fin: bool = False) -> bytes:
        return _control(SYN_STREAM, FIN if fin else 0,
                        struct.pack(">IIBB", stream_id, 0, 0, 0) + self._header_block(headers))

    def syn_reply(self, stream_id: int, headers: dict[str, list[str]] | None = None) -> bytes:
        return _control(SYN_REPLY, 0, struct.pack(">I", stream_id) + self._header_block(headers or {}))


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, flags << 24 | len(payload)) + payload


def data(stream_id: int, payload: bytes, *, fin: bool = False) -> bytes:
    return struct.pack(">II", stream_id, (FIN if fin else 0) << 24 | len(payload)) + payload


def rst_stream(stream_id: int, status: int) -> bytes:
    return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def ping(ping_id: int) -> bytes:
    return _control(PING, 0, struct.pack(">I", ping_id))


def goaway(last_stream_id: int, status: int) -> bytes:
    return _control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))
