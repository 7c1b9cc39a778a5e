"""Our HTTP/2 gRPC server (kvstore/http2.py, grpc_wire.py, kv_port.py) on a real socket: driven by grpc.aio's
client (another implementation of the protocol) for what clients do, and by hand-made frames for what a broken or
hostile peer does, which must cost it its stream or its connection and leave the server serving."""
from __future__ import annotations

import asyncio
import contextlib
import random
import struct

import grpc
import hpack
import pytest
from aiohttp import ClientSession

from kvstore import errors, http2
from kvstore.etcdpb import message
from kvstore.grpc_wire import Abort, Call, Method
from tests.unit.kv_port_server import serving

PutRequest = message("etcdserverpb.PutRequest")
PutResponse = message("etcdserverpb.PutResponse")


class Handlers:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def echo(self, request, call: Call):
        return PutResponse(header={"revision": len(request.value), "raft_term": int(call.metadata.get("x-n", 0))})

    async def big(self, request, call: Call):
        """Replies far larger than a client's window: flow control must carry them whole."""
        for i in range(int(request.key)):
            await call.write(PutResponse(prev_kv={"key": b"%d" % i, "value": bytes([i % 256]) * (1 << 20)}))

    async def chat(self, requests, call: Call):
        async for request in requests:
            await call.write(PutResponse(prev_kv={"key": request.key, "value": request.value}))

    async def fail(self, request, call: Call):
        raise Abort(errors.NOT_FOUND, "nöt found: 100% sure")

    async def crash(self, request, call: Call):
        raise RuntimeError("a bug")

    async def hang(self, request, call: Call):
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@pytest.fixture
async def server():
    h = Handlers()
    methods = {"/t.T/Echo": Method(h.echo, PutRequest), "/t.T/Fail": Method(h.fail, PutRequest),
               "/t.T/Crash": Method(h.crash, PutRequest), "/t.T/Hang": Method(h.hang, PutRequest),
               "/t.T/Big": Method(h.big, PutRequest, server_streaming=True),
               "/t.T/Chat": Method(h.chat, PutRequest, client_streaming=True, server_streaming=True)}
    async with serving(methods, "hello over HTTP/1.1") as port:
        yield port, h


def _stub(channel: grpc.aio.Channel, name: str, kind: str = "unary_unary"):
    return getattr(channel, kind)(f"/t.T/{name}", request_serializer=PutRequest.SerializeToString,
                                  response_deserializer=PutResponse.FromString)


async def test_unary_calls_with_metadata_many_at_once_and_http1_on_the_same_port(server):
    port, _ = server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        echo = _stub(channel, "Echo")
        got = await asyncio.gather(*(echo(PutRequest(value=b"x" * i), metadata=(("x-n", str(i)),))
                                     for i in range(200)))
        assert [(r.header.revision, r.header.raft_term) for r in got] == [(i, i) for i in range(200)]
        big = await echo(PutRequest(value=b"y" * (1 << 20)), timeout=10)  # more than one window of DATA
        assert big.header.revision == 1 << 20
    async with ClientSession() as session, session.get(f"http://127.0.0.1:{port}/hello") as resp:
        assert await resp.text() == "hello over HTTP/1.1"


async def test_server_streams_larger_than_the_clients_window_arrive_whole(server):
    port, _ = server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        replies = [r async for r in _stub(channel, "Big", "unary_stream")(PutRequest(key=b"12"))]
    assert [r.prev_kv.key for r in replies] == [b"%d" % i for i in range(12)]
    assert all(r.prev_kv.value == bytes([i]) * (1 << 20) for i, r in enumerate(replies))


async def test_a_bidirectional_stream_answers_each_request_in_order(server):
    port, _ = server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = _stub(channel, "Chat", "stream_stream")()
        for i in range(50):
            await call.write(PutRequest(key=b"%d" % i, value=b"v" * i))
            assert (await call.read()).prev_kv.key == b"%d" % i
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK


async def test_errors_carry_their_code_and_message_and_a_bug_is_internal(server):
    port, _ = server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _stub(channel, "Fail")(PutRequest())
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and err.value.details() == "nöt found: 100% sure"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _stub(channel, "Crash")(PutRequest())
        assert err.value.code() == grpc.StatusCode.INTERNAL
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _stub(channel, "Nope")(PutRequest())
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED and "unknown method Nope" in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await channel.unary_unary("/t.T/Echo")(b"\xff\xff not protobuf")
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (await _stub(channel, "Echo")(PutRequest(value=b"ok"))).header.revision == 2


async def test_a_client_deadline_cancels_the_handler(server):
    port, handlers = server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _stub(channel, "Hang")(PutRequest(), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.wait_for(handlers.cancelled.wait(), 5)


async def test_an_oversized_message_is_refused_before_it_is_read(server):
    port, _ = server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _stub(channel, "Echo")(PutRequest(value=b"z" * (3 << 20)), timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# -- a broken or hostile peer, frame by frame ---------------------------------------------------------

def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return http2.frame(kind, flags, stream_id, payload)


def request_headers(encoder: hpack.Encoder, path: str = "/t.T/Echo") -> bytes:
    return encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "t"),
                           ("content-type", "application/grpc"), ("te", "trailers")])


class Peer:
    """A raw HTTP/2 client: sends bytes, reads frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, preface: bool = True) -> "Peer":
        peer = cls(*await asyncio.open_connection("127.0.0.1", port))
        if preface:
            peer.send(http2.PREFACE + frame(http2.SETTINGS, 0, 0))
        return peer

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def frames(self, until: int | None = None, timeout: float = 5.0) -> list[tuple[int, int, int, bytes]]:
        """Frames read until one of type `until`, or until the server closes the connection."""
        out = []
        try:
            while True:
                head = await asyncio.wait_for(self.reader.readexactly(9), timeout)
                high, low, kind, flags, stream_id = http2.FRAME.unpack(head)
                payload = await asyncio.wait_for(self.reader.readexactly(high << 16 | low), timeout)
                out.append((kind, flags, stream_id, payload))
                if kind == until:
                    return out
        except asyncio.IncompleteReadError:
            return out

    def close(self) -> None:
        self.writer.close()


def goaway_code(frames: list[tuple[int, int, int, bytes]]) -> int | None:
    return next((struct.unpack(">II", p[:8])[1] for kind, _, _, p in frames if kind == http2.GOAWAY), None)


@pytest.mark.parametrize("name,data,code", [
    ("an oversized frame", frame(http2.DATA, 0, 1, b"x" * (http2.DEFAULT_FRAME + 1)), http2.FRAME_SIZE_ERROR),
    ("DATA on stream 0", frame(http2.DATA, 0, 0, b"x"), http2.PROTOCOL_ERROR),
    ("HEADERS on an even stream", frame(http2.HEADERS, http2.END_HEADERS, 2, b""), http2.PROTOCOL_ERROR),
    ("a header block hpack cannot decode", frame(http2.HEADERS, http2.END_HEADERS, 1, b"\xff\xff\xff\xff\xff\xff"),
     http2.COMPRESSION_ERROR),
    ("a window past 2^31-1", frame(http2.WINDOW_UPDATE, 0, 0, struct.pack(">I", http2.MAX_WINDOW)),
     http2.FLOW_CONTROL_ERROR),
    ("a SETTINGS frame of 5 bytes", frame(http2.SETTINGS, 0, 0, b"\0" * 5), http2.FRAME_SIZE_ERROR),
    ("a PING of 3 bytes", frame(http2.PING, 0, 0, b"abc"), http2.FRAME_SIZE_ERROR),
    ("a CONTINUATION out of nowhere", frame(http2.CONTINUATION, http2.END_HEADERS, 1, b""), http2.PROTOCOL_ERROR),
    ("a push", frame(http2.PUSH_PROMISE, http2.END_HEADERS, 1, b"\0\0\0\2"), http2.PROTOCOL_ERROR),
    ("DATA on a stream never opened", frame(http2.DATA, 0, 7, b"x"), http2.PROTOCOL_ERROR),
    ("padding longer than its frame", frame(http2.HEADERS, http2.END_HEADERS | http2.PADDED, 1, b"\x09abc"),
     http2.PROTOCOL_ERROR),
])
async def test_a_protocol_error_costs_the_peer_its_connection_and_nothing_else(server, name, data, code):
    port, _ = server
    peer = await Peer.connect(port)
    peer.send(data)
    assert goaway_code(await peer.frames()) == code, name
    peer.close()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert (await _stub(channel, "Echo")(PutRequest(value=b"still"))).header.revision == 5


async def test_garbage_instead_of_a_preface_is_closed_without_an_answer(server):
    port, _ = server
    peer = await Peer.connect(port, preface=False)
    peer.send(b"PRI * HTTP/2.0\r\n\r\nXX garbage")
    assert await peer.frames() == []


async def test_pings_are_answered_and_streams_past_the_limit_are_refused(server):
    port, _ = server
    peer = await Peer.connect(port)
    encoder = hpack.Encoder()
    peer.send(frame(http2.PING, 0, 0, b"12345678"))
    pong = [f for f in await peer.frames(until=http2.PING) if f[0] == http2.PING]
    assert pong == [(http2.PING, http2.ACK, 0, b"12345678")]
    opened = [frame(http2.HEADERS, http2.END_HEADERS, 2 * i + 1, request_headers(encoder, "/t.T/Hang"))
              for i in range(http2.MAX_STREAMS + 1)]  # never ended: each stays open
    peer.send(b"".join(opened))
    refused = [f for f in await peer.frames(until=http2.RST_STREAM) if f[0] == http2.RST_STREAM]
    assert refused == [(http2.RST_STREAM, 0, 2 * http2.MAX_STREAMS + 1, struct.pack(">I", http2.REFUSED_STREAM))]
    peer.close()


async def test_data_after_the_end_of_a_request_costs_only_that_stream(server):
    port, handlers = server
    peer = await Peer.connect(port)
    encoder = hpack.Encoder()
    empty = b"\0" + struct.pack(">I", 0)
    peer.send(frame(http2.HEADERS, http2.END_HEADERS, 1, request_headers(encoder, "/t.T/Hang")) +
              frame(http2.DATA, http2.END_STREAM, 1, empty))
    await asyncio.wait_for(handlers.started.wait(), 5)
    peer.send(frame(http2.DATA, 0, 1, empty))
    reset = [f for f in await peer.frames(until=http2.RST_STREAM) if f[0] == http2.RST_STREAM]
    assert reset == [(http2.RST_STREAM, 0, 1, struct.pack(">I", http2.STREAM_CLOSED))]
    await asyncio.wait_for(handlers.cancelled.wait(), 5)
    peer.send(frame(http2.HEADERS, http2.END_HEADERS, 3, request_headers(encoder)) +
              frame(http2.DATA, http2.END_STREAM, 3, empty))
    answered = await peer.frames(until=http2.HEADERS)
    assert any(kind == http2.HEADERS and stream_id == 3 for kind, _, stream_id, _ in answered)
    peer.close()


async def test_random_frames_never_stop_the_server(server):
    """Seeded random frames, valid and not, on 40 connections: each ends as it may, and calls still work."""
    port, _ = server
    rng = random.Random(13)
    for _ in range(40):
        peer = await Peer.connect(port)
        encoder = hpack.Encoder()
        frames = []
        for _ in range(rng.randrange(1, 30)):
            kind = rng.choice([*range(11), rng.randrange(256)])
            stream_id = rng.choice([0, 1, 2, 3, 5, rng.randrange(1 << 31)])
            payload = request_headers(encoder) if kind == http2.HEADERS and rng.random() < 0.5 else \
                rng.randbytes(rng.choice([0, 4, 5, 8, rng.randrange(200)]))
            frames.append(frame(kind, rng.randrange(256), stream_id, payload))
        peer.send(b"".join(frames))
        if rng.random() < 0.2:
            with contextlib.suppress(asyncio.TimeoutError):
                await peer.frames(timeout=0.5)
        peer.close()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert (await _stub(channel, "Echo")(PutRequest(value=b"alive"))).header.revision == 5


async def test_thousands_of_streams_opened_and_reset_in_one_write_leave_the_server_serving(server):
    """The 'rapid reset' pattern: a read full of tiny frames is handled a few hundred frames per loop turn."""
    port, _ = server
    peer = await Peer.connect(port)
    encoder = hpack.Encoder()
    cancel = struct.pack(">I", http2.CANCEL)
    burst = b"".join(frame(http2.HEADERS, http2.END_HEADERS, 2 * i + 1, request_headers(encoder, "/t.T/Hang")) +
                     frame(http2.RST_STREAM, 0, 2 * i + 1, cancel) for i in range(5000))
    peer.send(burst)
    peer.send(frame(http2.PING, 0, 0, b"finished"))
    pongs = [f for f in await peer.frames(until=http2.PING, timeout=30) if f[0] == http2.PING]
    assert pongs == [(http2.PING, http2.ACK, 0, b"finished")]  # every frame before it was handled
    peer.close()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert (await _stub(channel, "Echo")(PutRequest(value=b"after"))).header.revision == 5
