"""One port for both KV APIs, as etcd's client port: HTTP/1.1 for the JSON gateway (and /metrics), HTTP/2 for gRPC.

A connection's first bytes tell which: an HTTP/2 client starts with the preface `PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n`,
which no HTTP/1.1 request can begin with. `Sniffer` reads until the bytes so far stop matching the preface
(HTTP/1.1) or match all of it (HTTP/2), then hands the connection, with what it read, to aiohttp's protocol or
to our HTTP/2 one; from then on it is out of the way.

    server = await serve(gateway_runner, grpc_server, "127.0.0.1", 2379)
    ...
    server.close(); grpc_server.close(); await gateway_runner.cleanup()
"""
from __future__ import annotations

import asyncio
from typing import Callable

from aiohttp import web

from kvstore.grpc_wire import GrpcServer
from kvstore.http2 import PREFACE


class Sniffer(asyncio.Protocol):
    def __init__(self, http1: Callable[[], asyncio.Protocol], http2: Callable[[], asyncio.Protocol]) -> None:
        self.http1 = http1
        self.http2 = http2
        self.transport: asyncio.Transport | None = None
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        n = min(len(self.buf), len(PREFACE))
        if self.buf[:n] != PREFACE[:n]:
            self._hand_to(self.http1())
        elif n == len(PREFACE):
            self._hand_to(self.http2())

    def eof_received(self) -> bool:
        return False  # closed before it said anything: close our side too

    def _hand_to(self, protocol: asyncio.Protocol) -> None:
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        protocol.data_received(self.buf)


async def serve(gateway: web.AppRunner, grpc: GrpcServer, host: str, port: int) -> asyncio.Server:
    """Listen on HOST:PORT for both; `gateway` is set up (`await runner.setup()`) but has no site."""
    return await asyncio.get_running_loop().create_server(
        lambda: Sniffer(gateway.server, grpc.connection), host, port, reuse_address=True)
