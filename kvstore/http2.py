"""HTTP/2 for gRPC, server side, on the event loop (RFC 9113): the part of the protocol a gRPC server uses.

grpc.aio does its I/O on threads of its own and hands every call to the loop and back; grpclib stays on the loop
but goes through h2, whose general state machines cost more than our handlers do (README, "The gRPC API"). This
connection does what gRPC needs and no more: client streams (no push, priorities ignored), DATA with flow
control both ways, SETTINGS, PING, WINDOW_UPDATE, RST_STREAM and GOAWAY. Request headers are decoded by the
`hpack` package; what we send uses no dynamic table, so reply header blocks are constant bytes. Everything
written in one loop iteration leaves in one `writelines`, so the answers to a whole Raft batch share a syscall.

How a call goes through (the application is grpc_wire.py):
  1. HEADERS (and CONTINUATION) open a `Stream`; `open_stream(connection, stream)` returns its `StreamHandler`;
  2. each DATA frame's payload goes to `handler.data()`, the end of the client's side to `handler.end()`;
     window credit goes back as the handler consumes it (`hold`/`release`), not before;
  3. the handler answers with `send_headers`, `send_data` and `send_trailers`; DATA waits in the stream for
     window, and a long stream's writer waits in `drained()`;
  4. a client's RST_STREAM, or the connection's end, reaches the handler as `handler.reset()`.
A peer that breaks the protocol loses its stream (RST_STREAM) or its connection (GOAWAY): nothing it sends can
stop the process or grow memory past the limits below.
"""
from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from typing import Callable, Protocol

import hpack

log = logging.getLogger("raftkube.http2")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 5, 6, 7, 8, 9, 11
SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE = 2, 3, 4
SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = 5, 6

MAX_WINDOW = (1 << 31) - 1
DEFAULT_WINDOW = 65535
DEFAULT_FRAME = 16384  # the largest frame we accept (the protocol's default; we do not raise it)

# Our limits. Streams and headers: what etcd clients need many times over. A stream's window holds a whole
# message of the largest size gRPC takes (grpc_wire.MAX_MESSAGE), so a message never waits for its own credit.
# HELD: bytes received on one connection that its calls have not consumed; past it, connection window credit
# waits, so a client that sends faster than its calls consume is slowed down, not buffered without end.
MAX_STREAMS = 1000
MAX_HEADER_BYTES = 64 * 1024
STREAM_WINDOW = 4 << 20
CONNECTION_WINDOW = 16 << 20
MAX_HELD = 128 << 20
FRAMES_PER_TURN = 256  # frames handled before the loop gets a turn
FLUSH_PIECES = 64  # a long stream's frames wait for the loop's turn until this many are queued
MAX_CONTROL_BACKLOG = 16 << 20  # unsent bytes when a PING or SETTINGS must be answered: the peer is not reading

FRAME = struct.Struct(">BHBBI")  # length (24 bits, as 8 + 16), type, flags, stream id
SETTING = struct.Struct(">HI")
WINDOW = struct.Struct(">I")
OUR_SETTINGS = b"".join(SETTING.pack(k, v) for k, v in (
    (SETTINGS_ENABLE_PUSH, 0), (SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS),
    (SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW), (SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_BYTES)))


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return FRAME.pack(n >> 16, n & 0xFFFF, kind, flags, stream_id) + payload


class ProtocolError(Exception):
    """A connection error: answered with GOAWAY carrying `code`, then the connection is closed."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class StreamHandler(Protocol):
    def data(self, chunk: bytes) -> None: ...
    def end(self) -> None: ...
    def reset(self) -> None: ...


class HeaderDecoder:
    """hpack's decoder, with whole header blocks cached: a gRPC client repeats the same block call after call
    (C-core indexes even its rounded grpc-timeout: 9 bytes, every field from the dynamic table). A block that
    leaves the dynamic table as it was decodes the same way for as long as the table does not change, so the
    cache is emptied whenever a block changes the table (hpack 4's `header_table.dynamic_entries`)."""

    MAX_CACHED, MAX_CACHED_BLOCK = 64, 1024

    def __init__(self) -> None:
        self.decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_BYTES)
        self.cache: dict[bytes, dict[bytes, bytes]] = {}

    def decode(self, block: bytes) -> dict[bytes, bytes]:
        """The block's fields (a shared dict on a cache hit: read it, never change it)."""
        headers = self.cache.get(block)
        if headers is not None:
            return headers
        table = self.decoder.header_table
        before = self._state(table)
        headers = dict(self.decoder.decode(block, raw=True))
        if self._state(table) != before:
            self.cache.clear()
        elif len(block) <= self.MAX_CACHED_BLOCK and len(self.cache) < self.MAX_CACHED:
            self.cache[block] = headers
        return headers

    @staticmethod
    def _state(table) -> tuple:
        """What changes when an entry is added or the table resized (entries are new tuples: compared by id)."""
        entries = table.dynamic_entries
        return table.maxsize, len(entries), id(entries[0]) if entries else 0


class Stream:
    """One request's state: its headers, both windows, and the DATA and trailers waiting for window."""

    __slots__ = ("id", "headers", "handler", "recv_open", "send_open", "recv_window", "send_window", "owed",
                 "held", "out", "out_offset", "trailers", "drain")

    def __init__(self, stream_id: int, headers: dict[bytes, bytes], send_window: int) -> None:
        self.id = stream_id
        self.headers = headers
        self.handler: StreamHandler | None = None
        self.recv_open = True  # the client may still send
        self.send_open = True  # we may still send
        self.recv_window = STREAM_WINDOW
        self.send_window = send_window
        self.owed = 0  # received bytes not yet given back as window
        self.held = 0  # received bytes the handler has not consumed
        self.out: deque[bytes] = deque()
        self.out_offset = 0
        self.trailers: bytes | None = None
        self.drain: asyncio.Future | None = None


class Connection(asyncio.Protocol):
    def __init__(self, open_stream: Callable[[Connection, Stream], StreamHandler]) -> None:
        self.open_stream = open_stream
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.preface_seen = False
        self.decoder = HeaderDecoder()
        self.streams: dict[int, Stream] = {}
        self.blocked: dict[int, Stream] = {}  # streams with DATA waiting for window or for the transport
        self.last_id = 0
        self.continuing: tuple[int, int, bytearray] | None = None  # a header block awaiting CONTINUATION
        self.peer_window = DEFAULT_WINDOW
        self.peer_stream_window = DEFAULT_WINDOW
        self.peer_max_frame = DEFAULT_FRAME
        self.recv_window = CONNECTION_WINDOW
        self.owed = 0
        self.held = 0
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.paused = False
        self.reading_paused = False
        self.closed = False

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.out += [frame(SETTINGS, 0, 0, OUR_SETTINGS),
                     frame(WINDOW_UPDATE, 0, 0, WINDOW.pack(CONNECTION_WINDOW - DEFAULT_WINDOW))]
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.buf += data
        self._handle_frames()

    def _handle_frames(self) -> bool:
        """Handle the whole frames received, at most FRAMES_PER_TURN of them before the loop gets a turn: one
        read can hold thousands of tiny frames (streams opened and reset at once), and Raft shares the loop.
        The rest waits, with reading paused, for the next turn (`_next_turn`); True if some wait."""
        buf = self.buf
        if not self.preface_seen:
            if buf[:len(PREFACE)] != PREFACE[:len(buf)]:
                self._close()
                return False
            if len(buf) < len(PREFACE):
                return False
            del buf[:len(PREFACE)]
            self.preface_seen = True
        at, size, handled, waiting = 0, len(buf), 0, False
        try:
            while size - at >= 9 and not self.closed:
                if handled == FRAMES_PER_TURN:
                    waiting = True
                    self._yield_turn()
                    break
                handled += 1
                high, low, kind, flags, stream_id = FRAME.unpack_from(buf, at)
                length = high << 16 | low
                if length > DEFAULT_FRAME:
                    raise ProtocolError(FRAME_SIZE_ERROR, f"a frame of {length} bytes (at most {DEFAULT_FRAME})")
                if size - at - 9 < length:
                    break
                payload = bytes(buf[at + 9:at + 9 + length])
                at += 9 + length
                self._frame(kind, flags, stream_id & 0x7FFFFFFF, payload)
        except ProtocolError as exc:
            self.fail(exc.code, str(exc))
            return False
        del buf[:at]
        return waiting

    def _yield_turn(self) -> None:
        if not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        if self.closed:
            return
        if not self._handle_frames() and self.reading_paused and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for stream in list(self.streams.values()):
            self._pump(stream)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        streams, self.streams = self.streams, {}
        self.blocked.clear()
        for stream in streams.values():
            self._wake(stream)
            if stream.handler is not None:
                stream.handler.reset()

    # -- what the application calls ---------------------------------------------------------

    def send_headers(self, stream: Stream, block: bytes, *, end: bool = False) -> None:
        """Response headers, or (end=True) a trailers-only answer that ends the stream."""
        if not stream.send_open or self.closed:
            return
        self._headers(stream.id, block, END_STREAM if end else 0)
        if end:
            self._sent_end(stream)
        self._schedule_flush()

    def send_data(self, stream: Stream, data: bytes) -> None:
        if stream.send_open and not self.closed and data:
            stream.out.append(data)
            self._pump(stream)

    def send_trailers(self, stream: Stream, block: bytes) -> None:
        """The last header block: sent, with END_STREAM, once every DATA queued before it has gone."""
        if stream.send_open and not self.closed:
            stream.trailers = block
            self._pump(stream)

    async def drained(self, stream: Stream) -> None:
        """Until `stream`'s DATA has left (or the stream or connection is gone): a long stream's backpressure.
        What is queued goes to the transport first once it is large, so a peer with a huge window still meets the
        transport's own backpressure (pause_writing); and the loop gets a turn either way."""
        if len(self.out) >= FLUSH_PIECES:
            self._flush()
        if not ((stream.out or self.paused) and stream.send_open and not self.closed):
            await asyncio.sleep(0)
        while (stream.out or self.paused) and stream.send_open and not self.closed:
            stream.drain = asyncio.get_running_loop().create_future()
            await stream.drain

    def hold(self, stream: Stream, n: int) -> None:
        """`n` received bytes are kept for the handler: their window credit waits until `release`."""
        stream.held += n
        if self.streams.get(stream.id) is stream:
            self.held += n

    def release(self, stream: Stream, n: int) -> None:
        stream.held -= n
        if self.streams.get(stream.id) is stream:
            self.held -= n
            self._credit(stream)

    def reset(self, stream: Stream, code: int) -> None:
        """End `stream` with RST_STREAM (the handler knows: it asked)."""
        if stream.id in self.streams and not self.closed:
            self.out.append(frame(RST_STREAM, 0, stream.id, WINDOW.pack(code)))
            self._schedule_flush()
        self._forget(stream)

    def fail(self, code: int, message: str) -> None:
        """A connection error: GOAWAY, then close."""
        if self.closed:
            return
        if code != NO_ERROR:
            log.info("HTTP/2 connection from %s closed: %s", self._peer(), message)
        self.out.append(frame(GOAWAY, 0, 0, struct.pack(">II", self.last_id, code) + message.encode()[:256]))
        self._close()

    # -- frames -----------------------------------------------------------------------------

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self.continuing is not None and kind != CONTINUATION:
            raise ProtocolError(PROTOCOL_ERROR, "a header block interrupted before its END_HEADERS")
        handler = self.FRAME_HANDLERS.get(kind)
        if handler is not None:  # a type we do not know is an extension: ignored, as RFC 9113 section 4.1 says
            handler(self, flags, stream_id, payload)

    def _on_priority(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or len(payload) != 5:
            raise ProtocolError(PROTOCOL_ERROR, "a malformed PRIORITY frame")  # else ignored: no priorities here

    def _on_push_promise(self, flags: int, stream_id: int, payload: bytes) -> None:
        raise ProtocolError(PROTOCOL_ERROR, "a client may not push")

    def _on_goaway(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:  # else the client is leaving: it closes the connection when its calls are done
            raise ProtocolError(PROTOCOL_ERROR, "GOAWAY on a stream")

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ProtocolError(PROTOCOL_ERROR, "DATA on stream 0")
        self._check_known(stream_id)
        size = len(payload)
        self.recv_window -= size
        if self.recv_window < 0:
            raise ProtocolError(FLOW_CONTROL_ERROR, "DATA beyond the connection's window")
        self.owed += size
        stream = self.streams.get(stream_id)
        if stream is None:  # a stream we ended: what the client sent before it knew is dropped
            self._credit(None)
            return
        if not stream.recv_open:
            self._credit(None)
            self._refuse(stream, STREAM_CLOSED)
            return
        stream.recv_window -= size
        stream.owed += size
        if stream.recv_window < 0:
            self._refuse(stream, FLOW_CONTROL_ERROR)
            return
        data = _unpad(flags, payload)
        if data:
            stream.handler.data(data)
        if flags & END_STREAM and stream.recv_open:
            self._received_end(stream)
        self._credit(stream)

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or stream_id % 2 == 0:
            raise ProtocolError(PROTOCOL_ERROR, f"HEADERS on stream {stream_id}: clients open odd streams")
        block = _unpad(flags, payload)
        if flags & PRIORITY_FLAG:
            if len(block) < 5:
                raise ProtocolError(PROTOCOL_ERROR, "a HEADERS frame too short for its priority")
            block = block[5:]
        if flags & END_HEADERS:
            self._on_header_block(stream_id, flags, block)
        else:
            self.continuing = (stream_id, flags, bytearray(block))

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self.continuing is None or self.continuing[0] != stream_id:
            raise ProtocolError(PROTOCOL_ERROR, "CONTINUATION without a header block to continue")
        _, first_flags, block = self.continuing
        block += payload
        if len(block) > MAX_HEADER_BYTES:
            raise ProtocolError(ENHANCE_YOUR_CALM, f"a header block over {MAX_HEADER_BYTES} bytes")
        if flags & END_HEADERS:
            self.continuing = None
            self._on_header_block(stream_id, first_flags, bytes(block))

    def _on_header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        try:  # always decoded, even for a stream refused below: HPACK's table is the connection's
            headers = self.decoder.decode(block)
        except hpack.HPACKError as exc:
            raise ProtocolError(COMPRESSION_ERROR, f"header block: {exc}") from None
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers: they must end the client's side
            if not stream.recv_open:
                self._refuse(stream, STREAM_CLOSED)
            elif not flags & END_STREAM:
                raise ProtocolError(PROTOCOL_ERROR, "a second header block that does not end the stream")
            else:
                self._received_end(stream)
            return
        if stream_id <= self.last_id:
            raise ProtocolError(STREAM_CLOSED, f"HEADERS on closed stream {stream_id}")
        self.last_id = stream_id
        if len(self.streams) >= MAX_STREAMS:
            self.out.append(frame(RST_STREAM, 0, stream_id, WINDOW.pack(REFUSED_STREAM)))
            self._schedule_flush()
            return
        stream = Stream(stream_id, headers, self.peer_stream_window)
        self.streams[stream_id] = stream
        stream.handler = self.open_stream(self, stream)
        if flags & END_STREAM and stream.recv_open:
            self._received_end(stream)

    def _on_window_update(self, flags: int, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ProtocolError(FRAME_SIZE_ERROR, "WINDOW_UPDATE is 4 bytes")
        increment = WINDOW.unpack(payload)[0] & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise ProtocolError(PROTOCOL_ERROR, "a WINDOW_UPDATE of 0")
            self.peer_window += increment
            if self.peer_window > MAX_WINDOW:
                raise ProtocolError(FLOW_CONTROL_ERROR, "the connection's window past 2^31-1")
            for stream in list(self.blocked.values()):
                self._pump(stream)
            return
        self._check_known(stream_id)
        stream = self.streams.get(stream_id)
        if stream is None:
            return  # a stream already closed: its update may cross our end
        if increment == 0 or stream.send_window + increment > MAX_WINDOW:
            self._refuse(stream, PROTOCOL_ERROR if increment == 0 else FLOW_CONTROL_ERROR)
            return
        stream.send_window += increment
        self._pump(stream)

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise ProtocolError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise ProtocolError(FRAME_SIZE_ERROR, "a SETTINGS acknowledgement with a payload")
            return
        if len(payload) % 6:
            raise ProtocolError(FRAME_SIZE_ERROR, "SETTINGS is a list of 6-byte entries")
        for at in range(0, len(payload), 6):
            key, value = SETTING.unpack_from(payload, at)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ProtocolError(FLOW_CONTROL_ERROR, "an initial window past 2^31-1")
                delta, self.peer_stream_window = value - self.peer_stream_window, value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise ProtocolError(FLOW_CONTROL_ERROR, "a stream's window past 2^31-1")
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not DEFAULT_FRAME <= value <= (1 << 24) - 1:
                    raise ProtocolError(PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value}")
                self.peer_max_frame = value
            elif key == SETTINGS_ENABLE_PUSH and value > 1:
                raise ProtocolError(PROTOCOL_ERROR, f"SETTINGS_ENABLE_PUSH {value}")
        self._control(frame(SETTINGS, ACK, 0))
        for stream in list(self.blocked.values()):
            self._pump(stream)

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0 or len(payload) != 8:
            raise ProtocolError(PROTOCOL_ERROR if stream_id else FRAME_SIZE_ERROR, "a malformed PING")
        if not flags & ACK:
            self._control(frame(PING, ACK, 0, payload))

    def _on_rst_stream(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or len(payload) != 4:
            raise ProtocolError(PROTOCOL_ERROR if stream_id == 0 else FRAME_SIZE_ERROR, "a malformed RST_STREAM")
        self._check_known(stream_id)
        stream = self.streams.get(stream_id)
        if stream is not None:
            self._forget(stream)
            stream.handler.reset()

    FRAME_HANDLERS = {DATA: _on_data, HEADERS: _on_headers, CONTINUATION: _on_continuation,
                      WINDOW_UPDATE: _on_window_update, SETTINGS: _on_settings, PING: _on_ping,
                      RST_STREAM: _on_rst_stream, PRIORITY: _on_priority, PUSH_PROMISE: _on_push_promise,
                      GOAWAY: _on_goaway}

    # -- helpers ----------------------------------------------------------------------------

    def _check_known(self, stream_id: int) -> None:
        if stream_id > self.last_id:
            raise ProtocolError(PROTOCOL_ERROR, f"a frame for stream {stream_id}, which was never opened")

    def _headers(self, stream_id: int, block: bytes, flags: int) -> None:
        """A header block, split into CONTINUATION frames if it is larger than the peer takes in one frame."""
        limit = self.peer_max_frame
        if len(block) <= limit:
            self.out.append(frame(HEADERS, flags | END_HEADERS, stream_id, block))
            return
        pieces = [block[at:at + limit] for at in range(0, len(block), limit)]
        self.out.append(frame(HEADERS, flags, stream_id, pieces[0]))
        for piece in pieces[1:-1]:
            self.out.append(frame(CONTINUATION, 0, stream_id, piece))
        self.out.append(frame(CONTINUATION, END_HEADERS, stream_id, pieces[-1]))

    def _pump(self, stream: Stream) -> None:
        """Send what the windows allow of `stream`'s DATA, then its trailers once no DATA is left."""
        out = stream.out
        while out and not self.paused:
            allowed = min(self.peer_window, stream.send_window, self.peer_max_frame)
            if allowed <= 0:
                break
            head, offset = out[0], stream.out_offset
            n = min(allowed, len(head) - offset)
            self.out.append(FRAME.pack(n >> 16, n & 0xFFFF, DATA, 0, stream.id))
            self.out.append(head if n == len(head) else head[offset:offset + n])
            self.peer_window -= n
            stream.send_window -= n
            if offset + n == len(head):
                out.popleft()
                stream.out_offset = 0
            else:
                stream.out_offset = offset + n
        if out:
            self.blocked[stream.id] = stream
        else:
            self.blocked.pop(stream.id, None)
            if stream.trailers is not None:
                self._headers(stream.id, stream.trailers, END_STREAM)
                stream.trailers = None
                self._sent_end(stream)
            if not self.paused:
                self._wake(stream)
        self._schedule_flush()

    def _sent_end(self, stream: Stream) -> None:
        stream.send_open = False
        if stream.recv_open:  # the answer is complete: the client need not send the rest (as gRPC servers do)
            self.out.append(frame(RST_STREAM, 0, stream.id, WINDOW.pack(NO_ERROR)))
        self._forget(stream)

    def _received_end(self, stream: Stream) -> None:
        stream.recv_open = False
        stream.handler.end()
        if not stream.send_open:
            self._forget(stream)

    def _refuse(self, stream: Stream, code: int) -> None:
        """A stream error the client caused: RST_STREAM, and the handler is told."""
        self.reset(stream, code)
        stream.handler.reset()

    def _forget(self, stream: Stream) -> None:
        stream.recv_open = stream.send_open = False
        if self.streams.pop(stream.id, None) is not None:
            self.held -= stream.held
            self.blocked.pop(stream.id, None)
            stream.out.clear()
            self._wake(stream)

    def _credit(self, stream: Stream | None) -> None:
        """Give back window for what was received and is not held, a quarter window at a time."""
        if stream is not None and stream.recv_open and stream.owed - stream.held >= STREAM_WINDOW // 4:
            give = stream.owed - stream.held
            stream.owed -= give
            stream.recv_window += give
            self.out.append(frame(WINDOW_UPDATE, 0, stream.id, WINDOW.pack(give)))
            self._schedule_flush()
        if self.owed >= CONNECTION_WINDOW // 4 and self.held < MAX_HELD:
            self.recv_window += self.owed
            self.out.append(frame(WINDOW_UPDATE, 0, 0, WINDOW.pack(self.owed)))
            self.owed = 0
            self._schedule_flush()

    def _control(self, data: bytes) -> None:
        if self.transport.get_write_buffer_size() > MAX_CONTROL_BACKLOG:
            raise ProtocolError(ENHANCE_YOUR_CALM, "the peer does not read what we send")
        self.out.append(data)
        self._schedule_flush()

    @staticmethod
    def _wake(stream: Stream) -> None:
        if stream.drain is not None and not stream.drain.done():
            stream.drain.set_result(None)

    def _schedule_flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None and not self.transport.is_closing():
            out, self.out = self.out, []
            self.transport.writelines(out)

    def _close(self) -> None:
        self._flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return f"{peer[0]}:{peer[1]}" if peer else "?"


def _unpad(flags: int, payload: bytes) -> bytes:
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise ProtocolError(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1:len(payload) - payload[0]]
