"""gRPC over our HTTP/2 connection (http2.py): methods, length-prefixed messages, status and metadata, as gRPC's
wire protocol (PROTOCOL-HTTP2.md in grpc's repository) has them, on the event loop.

A call: its HEADERS name the method (`:path`), its DATA carries messages, each behind a 5-byte prefix (a
compression flag, a 4-byte length); the answer is response headers, messages, then trailers holding `grpc-status`
and `grpc-message`. A unary request's handler starts once the request has fully arrived; a streaming request's
handler starts at once and reads requests as they come:

    server = GrpcServer({"/etcdserverpb.KV/Range": Method(range_handler, RangeRequest)})
    await loop.create_server(server.connection, host, port)

A handler is `async def handler(request, call)`: it returns the response (unary) or writes each one with
`await call.write(reply)` (server streaming); with client streaming, `request` is an async iterator of messages.
It ends a call with an error by raising `Abort(code, message)`; any other exception is logged and answered
Internal. A client that goes away, or resets its stream, cancels the handler's task.
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from google.protobuf.message import DecodeError
from hpack.hpack import encode_integer

from kvstore import errors, http2

log = logging.getLogger("raftkube.grpc")

OK, CANCELLED, UNKNOWN = 0, 1, 2
MAX_MESSAGE = 2 << 20  # a request larger than this is refused before it is read (etcd's limit is 1.5 MiB)
MAX_STATUS_MESSAGE = 4096


class Abort(Exception):
    """Raised by a handler: end the call with this gRPC status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Method:
    handler: Callable[[Any, Call], Awaitable[Any]]
    request: type  # the request's protobuf message class
    client_streaming: bool = False
    server_streaming: bool = False


# -- header blocks: HPACK without a dynamic table, so each is constant bytes ---------------------------

def _literal(name: bytes, value: bytes) -> bytes:
    """A 'literal header field without indexing, new name' with raw (not Huffman) strings: RFC 7541 6.2.2."""
    return b"\x00" + bytes(encode_integer(len(name), 7)) + name + bytes(encode_integer(len(value), 7)) + value


def _status_line(status: int) -> bytes:
    """`:status` by its static table name (index 8), or the indexed `:status: 200` itself."""
    return b"\x88" if status == 200 else b"\x08" + bytes(encode_integer(3, 7)) + str(status).encode()


RESPONSE_HEADERS = _status_line(200) + _literal(b"content-type", b"application/grpc")
OK_TRAILERS = _literal(b"grpc-status", b"0")


def _percent(message: str) -> bytes:
    """grpc-message's encoding: UTF-8, with every byte outside printable ASCII (and '%') as %XX."""
    raw = message.encode()[:MAX_STATUS_MESSAGE]
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in raw)


def trailers(code: int, message: str) -> bytes:
    if code == OK and not message:
        return OK_TRAILERS
    return _literal(b"grpc-status", str(code).encode()) + _literal(b"grpc-message", _percent(message))


def _prefixed(data: bytes) -> bytes:
    return b"\0" + len(data).to_bytes(4, "big") + data


# -- calls ----------------------------------------------------------------------------------------

class Call:
    """One gRPC call on one HTTP/2 stream; also what a handler gets as its context."""

    def __init__(self, conn: http2.Connection, stream: http2.Stream, method: Method) -> None:
        self.conn = conn
        self.stream = stream
        self.method = method
        self.buf = bytearray()
        self.messages: deque[bytes] = deque()  # arrived whole, not yet read by the handler
        self.waiter: asyncio.Future | None = None
        self.ended = False  # the client has sent everything
        self.finished = False  # the call has its status (sent, or the stream is gone)
        self.headers_sent = False
        self.task: asyncio.Task | None = None
        if method.client_streaming:
            self.task = asyncio.get_running_loop().create_task(self._run())

    @property
    def metadata(self) -> dict[str, str]:
        """The request's metadata: its headers other than HTTP/2's pseudo-headers."""
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in self.stream.headers.items()
                if not k.startswith(b":")}

    def done(self) -> bool:
        return self.finished

    async def write(self, message: Any) -> None:
        """Send one reply of a streaming answer; returns once the peer's window has taken it."""
        self._send(message)
        await self.conn.drained(self.stream)

    # -- http2.StreamHandler -------------------------------------------------------------------

    def data(self, chunk: bytes) -> None:
        self.conn.hold(self.stream, len(chunk))
        buf = self.buf
        buf += chunk
        while len(buf) >= 5 and not self.finished:
            length = int.from_bytes(buf[1:5], "big")
            if buf[0]:
                self._refuse(errors.UNIMPLEMENTED, "grpc: compressed messages are not supported: "
                                                   "send them uncompressed (grpc-encoding identity)")
            elif length > MAX_MESSAGE:
                self._refuse(errors.RESOURCE_EXHAUSTED,
                             f"grpc: received message larger than max ({length} vs. {MAX_MESSAGE})")
            elif len(buf) >= 5 + length:
                self.messages.append(bytes(buf[5:5 + length]))
                del buf[:5 + length]
                if not self.method.client_streaming and len(self.messages) > 1:
                    self._refuse(errors.INVALID_ARGUMENT, "grpc: a unary call sent more than one request")
            else:
                break
        self._wake()

    def end(self) -> None:
        self.ended = True
        if self.finished:
            return
        if self.buf:
            self._refuse(errors.INVALID_ARGUMENT, "grpc: the request ended inside a message")
        elif not self.method.client_streaming:
            if len(self.messages) != 1:
                self._refuse(errors.INVALID_ARGUMENT, "grpc: a unary call must send exactly one request")
            else:
                self.task = asyncio.get_running_loop().create_task(self._run())
        self._wake()

    def reset(self) -> None:
        self.finished = True
        if self.task is not None:
            self.task.cancel()
        self._wake()

    # -- inside -----------------------------------------------------------------------------

    async def _run(self) -> None:
        method = self.method
        try:
            if method.client_streaming:
                request: Any = self._requests()
            else:
                request = self._decode(self._take())
            result = await method.handler(request, self)
            if not method.server_streaming:
                self._send(result)
            self._finish(OK, "")
        except Abort as exc:
            self._finish(exc.code, exc.message)
        except asyncio.CancelledError:
            if not self.finished:  # not the client's doing: the server is stopping
                raise
        except Exception as exc:  # noqa: BLE001 - a handler's bug must not end the connection
            log.exception("gRPC handler for %s failed", self.stream.headers.get(b":path", b"?").decode("latin-1"))
            self._finish(errors.INTERNAL, f"grpc: the handler failed ({type(exc).__name__}); "
                                          "the server's log has the details")

    async def _requests(self) -> AsyncIterator[Any]:
        while True:
            while not self.messages:
                if self.ended or self.finished:
                    return
                self.waiter = asyncio.get_running_loop().create_future()
                await self.waiter
            yield self._decode(self._take())

    def _take(self) -> bytes:
        data = self.messages.popleft()
        self.conn.release(self.stream, 5 + len(data))
        return data

    def _decode(self, data: bytes) -> Any:
        try:
            return self.method.request.FromString(data)
        except DecodeError as exc:
            raise Abort(errors.INVALID_ARGUMENT, f"grpc: error unmarshalling request: {exc}") from None

    def _send(self, message: Any) -> None:
        if self.finished:
            return
        if not self.headers_sent:
            self.headers_sent = True
            self.conn.send_headers(self.stream, RESPONSE_HEADERS)
        self.conn.send_data(self.stream, _prefixed(message.SerializeToString()))

    def _finish(self, code: int, message: str) -> None:
        if self.finished:
            return
        self.finished = True
        if self.headers_sent:
            self.conn.send_trailers(self.stream, trailers(code, message))
        else:
            self.conn.send_headers(self.stream, RESPONSE_HEADERS + trailers(code, message), end=True)

    def _refuse(self, code: int, message: str) -> None:
        """The client sent what the call cannot take: answer with `code` now and stop the handler."""
        self._finish(code, message)
        if self.task is not None:
            self.task.cancel()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class Refused:
    """A stream answered as soon as it opened (no such method, not a gRPC request): the rest is ignored."""

    def data(self, chunk: bytes) -> None:
        pass

    def end(self) -> None:
        pass

    def reset(self) -> None:
        pass


class GrpcServer:
    """The methods, by path; `connection` is the protocol factory for `loop.create_server`."""

    def __init__(self, methods: dict[str, Method]) -> None:
        self.methods = methods
        self.connections: weakref.WeakSet[http2.Connection] = weakref.WeakSet()

    def connection(self) -> http2.Connection:
        conn = http2.Connection(self._open)
        self.connections.add(conn)
        return conn

    def close(self) -> None:
        """GOAWAY to every client, then close: their calls are cancelled, they reconnect elsewhere."""
        for conn in list(self.connections):
            conn.fail(http2.NO_ERROR, "the server is shutting down")

    def _open(self, conn: http2.Connection, stream: http2.Stream) -> http2.StreamHandler:
        headers = stream.headers
        content_type = headers.get(b"content-type", b"")
        path = headers.get(b":path", b"").decode("latin-1")
        if headers.get(b":method") != b"POST":
            conn.send_headers(stream, _status_line(405), end=True)
        elif content_type != b"application/grpc" and not content_type.startswith(b"application/grpc+"):
            conn.send_headers(stream, _status_line(415) + trailers(UNKNOWN, "grpc: content-type is not "
                                                                             "application/grpc"), end=True)
        elif path not in self.methods:
            service, _, name = path.lstrip("/").partition("/")
            known = any(p.startswith(f"/{service}/") for p in self.methods)
            why = f"unknown method {name} for service {service}" if known else f"unknown service {service}"
            conn.send_headers(stream, RESPONSE_HEADERS + trailers(errors.UNIMPLEMENTED, why), end=True)
        else:
            return Call(conn, stream, self.methods[path])
        return Refused()
