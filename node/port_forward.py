"""`kubectl port-forward`: TCP connections to a pod's ports, each as a pair of SPDY streams in one WebSocket.

    kubectl port-forward pod/web 8080:80         (kubectl 1.32: WebSocket subprotocol SPDY/3.1+portforward.k8s.io)
      -> the API server's pods/portforward (a create), relayed to the kubelet:
      -> GET /portForward/NAMESPACE/POD   (WebSocket), then a SPDY/3.1 session inside it (node/spdy.py)
    per local connection kubectl opens two streams, headers streamType=error|data, port=80, requestID=N:
      1. each is answered (SYN_REPLY); once both are there, the kubelet connects to POD_IP:80
      2. DATA on the data stream goes to the socket, the socket's bytes come back as DATA; a FIN from the client
         half-closes the socket; the socket's end is a FIN on the data stream, then on the error stream
      3. a connection that fails is a message on the error stream ("error forwarding port 80 to pod ...", as the
         kubelet words it), then both streams end: kubectl prints it and stops forwarding, as it does upstream
Several connections run at once, each its own pair. PINGs are answered; a frame the session cannot take ends it
with GOAWAY (protocol error).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from node import spdy
from node.spdy import Frame, SpdyError

log = logging.getLogger("raftkube.kubelet")
PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CONNECT_TIMEOUT = 5.0
CHUNK = 32 << 10
MAX_BUFFERED = 1 << 20  # bytes queued for one connection before the session stops reading


@dataclass
class Forward:
    """One forwarded connection: its two streams, the port, and the bytes waiting to go into the socket."""
    port: int
    error_id: int = 0
    data_id: int = 0
    incoming: asyncio.Queue = field(default_factory=asyncio.Queue)  # bytes, or None for the client's FIN
    buffered: int = 0
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


class PortForwardSession:
    def __init__(self, ws: web.WebSocketResponse, *, host: str, pod: str, uid: str) -> None:
        self.ws, self.host, self.pod, self.uid = ws, host, pod, uid
        self.decoder, self.encoder = spdy.Decoder(), spdy.Encoder()
        self.forwards: dict[str, Forward] = {}  # requestID -> its connection
        self.streams: dict[int, Forward] = {}  # stream id -> its connection
        self._lock = asyncio.Lock()

    async def send(self, *frames: bytes) -> None:
        async with self._lock:
            if not self.ws.closed:
                await self.ws.send_bytes(b"".join(frames))

    async def reply(self, stream_id: int) -> None:
        """SYN_REPLY: encoded under the lock, as header blocks share one zlib stream and must go out in order."""
        async with self._lock:
            if not self.ws.closed:
                await self.ws.send_bytes(self.encoder.syn_reply(stream_id))

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY:
                    raise SpdyError(f"a {msg.type.name.lower()} message; the SPDY session is in binary messages")
                for frame in self.decoder.feed(msg.data):
                    if not await self.handle(frame):
                        return
        except SpdyError as exc:
            log.info("port-forward to pod %s: %s", self.pod, exc)
            await self.send(spdy.goaway(0, spdy.GOAWAY_PROTOCOL_ERROR))
        finally:
            tasks = [f.task for f in self.forwards.values() if f.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.ws.close()

    async def handle(self, frame: Frame) -> bool:
        """Act on one frame; False when the session is over (GOAWAY)."""
        if frame.kind == spdy.SYN_STREAM:
            await self.open_stream(frame)
        elif frame.kind == spdy.DATA:
            forward = self.streams.get(frame.stream_id)
            if forward is None:
                await self.send(spdy.rst_stream(frame.stream_id, spdy.INVALID_STREAM))
            elif frame.stream_id == forward.data_id:
                await self.to_pod(forward, frame.data, frame.fin)
        elif frame.kind == spdy.RST_STREAM:
            forward = self.streams.get(frame.stream_id)
            if forward is not None and forward.task is not None:
                forward.task.cancel()
        elif frame.kind == spdy.PING:
            await self.send(spdy.ping(frame.value))
        elif frame.kind == spdy.GOAWAY:
            return False
        return True  # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do (spdystream keeps no flow control either)

    async def open_stream(self, frame: Frame) -> None:
        headers = {name: values[0] for name, values in frame.headers.items() if values}
        kind, port, request_id = headers.get("streamtype"), headers.get("port", ""), headers.get("requestid")
        problem = None
        if kind not in ("error", "data"):
            problem = f"streamType {kind!r}: a port-forward stream is an error or a data stream"
        elif not port.isdigit() or not 0 < int(port) < 65536:
            problem = f"port {port!r} is not a port number (1 to 65535)"
        elif request_id is None:
            problem = "no requestID header: the two streams of a connection share one"
        elif frame.stream_id in self.streams:
            problem = f"stream {frame.stream_id} is open already"
        forward = self.forwards.get(request_id or "")
        if problem is None and forward is not None and (forward.port != int(port) or
                                                        (forward.error_id if kind == "error" else forward.data_id)):
            problem = f"request {request_id} has its {kind} stream already, or another port"
        if problem is not None:
            log.info("port-forward to pod %s: refused stream %d: %s", self.pod, frame.stream_id, problem)
            await self.send(spdy.rst_stream(frame.stream_id, spdy.REFUSED_STREAM))
            return
        forward = self.forwards.setdefault(request_id, Forward(int(port)))
        if kind == "error":
            forward.error_id = frame.stream_id
        else:
            forward.data_id = frame.stream_id
        self.streams[frame.stream_id] = forward
        await self.reply(frame.stream_id)
        if forward.error_id and forward.data_id:
            forward.task = asyncio.create_task(self.forward(request_id, forward))

    async def to_pod(self, forward: Forward, data: bytes, fin: bool) -> None:
        """Queue the client's bytes for the socket; the session stops reading while one connection holds too many."""
        if data:
            forward.incoming.put_nowait(data)
            forward.buffered += len(data)
        if fin:
            forward.incoming.put_nowait(None)
        while forward.buffered > MAX_BUFFERED and forward.task is not None and not forward.task.done():
            forward.drained.clear()
            await forward.drained.wait()

    async def forward(self, request_id: str, forward: Forward) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, forward.port), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            message = (f"error forwarding port {forward.port} to pod {self.pod}, uid {self.uid}: failed to connect "
                       f"to {self.host}:{forward.port}: {reason}")
            await self.send(spdy.data(forward.error_id, message.encode(), fin=True),
                            spdy.data(forward.data_id, b"", fin=True))
            self._forget(request_id, forward)
            return
        upstream = asyncio.create_task(self._upstream(forward, writer))
        try:
            while chunk := await reader.read(CHUNK):
                await self.send(spdy.data(forward.data_id, chunk))
            await self.send(spdy.data(forward.data_id, b"", fin=True), spdy.data(forward.error_id, b"", fin=True))
        except (ConnectionError, OSError):
            await self.send(spdy.rst_stream(forward.data_id, spdy.CANCEL), spdy.data(forward.error_id, b"", fin=True))
        finally:
            upstream.cancel()
            await asyncio.gather(upstream, return_exceptions=True)
            writer.close()
            self._forget(request_id, forward)

    async def _upstream(self, forward: Forward, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while (chunk := await forward.incoming.get()) is not None:
                writer.write(chunk)
                await writer.drain()
                forward.buffered -= len(chunk)
                forward.drained.set()
            if writer.can_write_eof():
                writer.write_eof()

    def _forget(self, request_id: str, forward: Forward) -> None:
        forward.drained.set()
        self.forwards.pop(request_id, None)
        self.streams.pop(forward.error_id, None)
        self.streams.pop(forward.data_id, None)
