"""`kubectl port-forward`: TCP connections to a pod's ports, each as a pair of SPDY streams in one WebSocket.

    kubectl port-forward pod/web 8080:80         (kubectl 1.32: WebSocket subprotocol SPDY/3.1+portforward.k8s.io)
      -> the API server's pods/portforward (a create), relayed to the kubelet:
      -> GET /portForward/NAMESPACE/POD   (WebSocket), then a SPDY/3.1 session inside it (node/spdy.py)
    per local connection kubectl opens two streams, headers streamType=error|data, port=80, requestID=N:
      1. each is answered (SYN_REPLY); once both are there, the kubelet connects to POD_IP:80
      2. DATA on the data stream goes to the socket, the socket's bytes come back as DATA; a FIN from the client
         half-closes the socket; the socket's end is a FIN on the data stream, then on the error stream
      3. a connection that cannot be made, or breaks, is a message on the error stream ("error forwarding port 80 to
         pod ...", as the kubelet words it), then both streams end: kubectl prints it and stops forwarding, as it does
         upstream
Several connections run at once, each its own pair; the pod's side of each is node/pod_connection.py's, which the
Python client's channel protocol (node/port_forward_channels.py) shares. PINGs are answered; a frame the session
cannot take ends it with GOAWAY (protocol error).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from node import spdy
from node.pod_connection import ForwardError, PodConnection, wind_down
from node.spdy import Frame, SpdyError

log = logging.getLogger("raftkube.kubelet")
PROTOCOL = "SPDY/3.1+portforward.k8s.io"


@dataclass
class Forward:
    """One forwarded connection: the pod's side (node/pod_connection.py), and its two streams."""
    connection: PodConnection
    error_id: int = 0
    data_id: int = 0


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
            await wind_down(f.connection for f in self.forwards.values())
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
                await forward.connection.put(frame.data)
                if frame.fin:
                    forward.connection.finish()
        elif frame.kind == spdy.RST_STREAM:
            forward = self.streams.get(frame.stream_id)
            if forward is not None and forward.connection.task is not None:
                forward.connection.task.cancel()
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
        if problem is None and forward is not None and (forward.connection.port != int(port) or
                                                        (forward.error_id if kind == "error" else forward.data_id)):
            problem = f"request {request_id} has its {kind} stream already, or another port"
        if problem is not None:
            log.info("port-forward to pod %s: refused stream %d: %s", self.pod, frame.stream_id, problem)
            await self.send(spdy.rst_stream(frame.stream_id, spdy.REFUSED_STREAM))
            return
        if forward is None:
            forward = self.forwards[request_id] = Forward(PodConnection(self.host, int(port), pod=self.pod,
                                                                        uid=self.uid))
        if kind == "error":
            forward.error_id = frame.stream_id
        else:
            forward.data_id = frame.stream_id
        self.streams[frame.stream_id] = forward
        await self.reply(frame.stream_id)
        if forward.error_id and forward.data_id:
            forward.connection.start(lambda chunk: self.send(spdy.data(forward.data_id, chunk)),
                                     lambda error: self.ended(request_id, forward, error))

    async def ended(self, request_id: str, forward: Forward, error: ForwardError | None) -> None:
        """The socket's end is a FIN on the data stream, then on the error stream; a connection that could not be made
        or broke is its message on the error stream (kubectl prints it and stops, as upstream), then both FINs."""
        if error is None:
            await self.send(spdy.data(forward.data_id, b"", fin=True), spdy.data(forward.error_id, b"", fin=True))
        else:
            log.info("port-forward: %s", error)
            await self.send(spdy.data(forward.error_id, str(error).encode(), fin=True),
                            spdy.data(forward.data_id, b"", fin=True))
        self.forwards.pop(request_id, None)
        self.streams.pop(forward.error_id, None)
        self.streams.pop(forward.data_id, None)
