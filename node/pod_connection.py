"""The pod's side of one forwarded connection, whichever protocol carries it to the client (node/port_forward.py's
SPDY streams, node/port_forward_channels.py's channels): connect to POD_IP:PORT, carry the client's bytes into the
socket in order, and the socket's bytes back, until the socket ends.

What could not be connected, or broke, is a ForwardError in the kubelet's words ("error forwarding port 80 to pod
web, uid ...: ..."), which each protocol puts on the connection's error stream or channel. The client's bytes wait in
a queue; past MAX_BUFFERED the session stops reading its WebSocket until the pod has taken some (the client then
waits on TCP, as with upstream's pipes). When the client goes, each connection gets its end of file after what it
sent, and a second (containerd's grace) to finish before it is cut.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Awaitable, Callable, Iterable

CONNECT_TIMEOUT = 5.0
CHUNK = 32 << 10
MAX_BUFFERED = 1 << 20  # bytes queued for one connection before the session stops reading
GRACE = 1.0  # seconds a connection may go on once the client has gone (what containerd gives the other direction)


class ForwardError(Exception):
    """A connection that could not be made, or broke: the message for the client, as the kubelet words it."""


class PodConnection:
    def __init__(self, host: str, port: int, *, pod: str, uid: str) -> None:
        self.host, self.port, self.pod, self.uid = host, port, pod, uid
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()  # None: the client's end of file
        self._buffered = 0
        self._drained = asyncio.Event()
        self.open = True  # until the socket ends (or could not be had): the client's bytes are wanted
        self.task: asyncio.Task | None = None

    def start(self, send: Callable[[bytes], Awaitable[None]],
              ended: Callable[[ForwardError | None], Awaitable[None]]) -> None:
        """Run the connection: the pod's bytes go to `send`; `ended` is told how it ended (None: the pod closed)."""
        self.task = asyncio.create_task(self._run(send, ended))

    async def put(self, data: bytes) -> None:
        """The client's bytes for the socket; waits while too many are queued. Bytes that come after the connection
        ended are dropped, as upstream drops writes to a closed stream."""
        if data and self.open:
            self._incoming.put_nowait(data)
            self._buffered += len(data)
        while self._buffered > MAX_BUFFERED and self.open:
            self._drained.clear()
            await self._drained.wait()

    def finish(self) -> None:
        """The client's end of file: the socket's writing side is shut once what came before is written."""
        if self.open:
            self._incoming.put_nowait(None)

    async def _run(self, send: Callable[[bytes], Awaitable[None]],
                   ended: Callable[[ForwardError | None], Awaitable[None]]) -> None:
        try:
            await self._forward(send)
        except ForwardError as exc:
            await ended(exc)
        else:
            await ended(None)

    async def _forward(self, send: Callable[[bytes], Awaitable[None]]) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            self._close()
            raise self._error(f"failed to connect to {self.host}:{self.port}: {_reason(exc)}") from None
        upstream = asyncio.create_task(self._upstream(writer))
        try:
            while chunk := await self._read(reader):
                await send(chunk)
        finally:
            self._close()
            upstream.cancel()
            await asyncio.gather(upstream, return_exceptions=True)
            writer.close()

    def _close(self) -> None:
        self.open = False
        self._drained.set()  # a session waiting to queue more reads on, and drops it

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        try:
            return await reader.read(CHUNK)
        except (ConnectionError, OSError) as exc:
            raise self._error(f"reading from {self.host}:{self.port}: {_reason(exc)}") from None

    async def _upstream(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while (chunk := await self._incoming.get()) is not None:
                writer.write(chunk)
                await writer.drain()
                self._buffered -= len(chunk)
                self._drained.set()
            if writer.can_write_eof():
                writer.write_eof()

    def _error(self, what: str) -> ForwardError:
        return ForwardError(f"error forwarding port {self.port} to pod {self.pod}, uid {self.uid}: {what}")


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__


async def wind_down(connections: Iterable[PodConnection]) -> None:
    """The client has gone: each connection gets its end of file after what the client sent, and GRACE seconds to
    finish (the pod may close on it), then it is cut."""
    connections = list(connections)
    for connection in connections:
        connection.finish()
    tasks = [c.task for c in connections if c.task is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=GRACE)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
