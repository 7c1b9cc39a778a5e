"""One channel WebSocket (node/wsstream.py's framing): framed writes, the client's messages, the end.

Writes go out one at a time (stdout and stderr pumps, or several forwarded ports, share the socket). exec and attach
end once, with a Status on the error channel and a normal close, which is what ends `kubectl exec` and gives it the
exit code; port-forward ends with a close.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

from aiohttp import WSCloseCode, WSMsgType, web

from node import channels, wsstream
from node.wsstream import Message, ProtocolError

MAX_MESSAGE = 32 << 20  # upstream's (x/net/websocket's) bound; the Python client sends stdin in one message


async def accept(request: web.Request, name: str) -> "ChannelSession":
    """The WebSocket, answered with subprotocol `name` (none for wsstream.NONE)."""
    ws = web.WebSocketResponse(protocols=(name,) if name else (), max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    return ChannelSession(ws, wsstream.PROTOCOLS[name])


class ChannelSession:
    def __init__(self, ws: web.WebSocketResponse, protocol: wsstream.Protocol) -> None:
        self.ws = ws
        self.protocol = protocol
        self._lock = asyncio.Lock()

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def send(self, channel: int, data: bytes) -> None:
        message = self.protocol.encode(channel, data)
        async with self._lock:
            if self.ws.closed:
                return
            if isinstance(message, str):
                await self.ws.send_str(message)
            else:
                await self.ws.send_bytes(message)

    async def messages(self) -> AsyncIterator[Message]:
        """The client's messages until it closes; one the framing does not allow raises ProtocolError."""
        async for msg in self.ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                raise ProtocolError(f"a broken WebSocket frame ({msg.data})")
            yield self.protocol.decode(msg.data)

    async def close(self, code: int = WSCloseCode.OK, reason: str = "") -> None:
        async with self._lock:
            # a close frame's reason has room for 123 bytes of UTF-8
            await self.ws.close(code=code, message=reason.encode()[:123].decode(errors="ignore").encode())

    async def finish(self, status: channels.Status) -> None:
        """exec's and attach's end: the Status on the error channel (as the protocol words it), then a normal close."""
        message = channels.status_message(status, self.protocol)
        if message is not None:
            await self.send(channels.ERROR, message)
        await self.close()

    async def fail(self, message: str, reason: str = "InternalError") -> None:
        await self.finish(channels.failure(message, reason))
