"""One exec or attach WebSocket (node/channels.py's protocol): framed writes, the client's messages, the end.

Writes go out one at a time (stdout and stderr pumps share the socket); the session ends once, with a Status on
the error channel and a normal close, which is what ends `kubectl exec` and gives it the exit code.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

from aiohttp import WSMsgType, web

from node import channels
from node.channels import Message, ProtocolError

MAX_MESSAGE = 1 << 20  # kubectl sends stdin in pieces of 32 KiB


async def accept(request: web.Request, protocol: str) -> "ChannelSession":
    ws = web.WebSocketResponse(protocols=(protocol,), max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    return ChannelSession(ws, protocol)


class ChannelSession:
    def __init__(self, ws: web.WebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._lock = asyncio.Lock()

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def send(self, channel: int, data: bytes) -> None:
        async with self._lock:
            if not self.ws.closed:
                await self.ws.send_bytes(channels.frame(channel, data))

    async def messages(self) -> AsyncIterator[Message]:
        """The client's messages until it closes; a message the protocol does not allow raises ProtocolError."""
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY:
                raise ProtocolError(f"a {msg.type.name.lower()} message: {self.protocol} sends binary messages only")
            yield channels.parse(msg.data, self.protocol)

    async def finish(self, status: bytes) -> None:
        """The Status on the error channel, then a normal close."""
        await self.send(channels.ERROR, status)
        async with self._lock:
            await self.ws.close()

    async def fail(self, message: str, reason: str = "InternalError") -> None:
        await self.finish(channels.failure(message, reason))
