"""One port for both KV APIs, as etcd's client port: HTTP/1.1 for the JSON gateway (and /metrics), HTTP/2 for gRPC.

Over TLS, ALPN says which (kvstore/tls.py): "h2" is HTTP/2, "http/1.1" the gateway. Otherwise (a plain port, or a
TLS client that named neither) a connection's first bytes tell: an HTTP/2 client starts with the preface
`PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n`, which no HTTP/1.1 request can begin with. `Sniffer` reads until the bytes
so far stop matching the preface (HTTP/1.1) or match all of it (HTTP/2), then hands the connection, with what it
read, to aiohttp's protocol or to our HTTP/2 one; from then on it is out of the way.

    server = await serve(gateway_runner, grpc_server, "127.0.0.1", 2379, tls=kvstore.tls.server_context(...))
    ...
    server.close(); grpc_server.close(); await gateway_runner.cleanup()
"""
from __future__ import annotations

import asyncio
import ssl
from typing import Callable

from aiohttp import web

from kvstore.grpc_wire import GrpcServer
from kvstore.http2 import PREFACE
from kvstore.tls import H2, HTTP1

HANDSHAKE_TIMEOUT = 10.0  # seconds a client may take to finish its TLS handshake before it is dropped


class Sniffer(asyncio.Protocol):
    def __init__(self, http1: Callable[[], asyncio.Protocol], http2: Callable[[], asyncio.Protocol]) -> None:
        self.http1 = http1
        self.http2 = http2
        self.transport: asyncio.Transport | None = None
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Over TLS this runs once the handshake is done, so the protocol ALPN chose is known."""
        self.transport = transport  # type: ignore[assignment]
        tls = transport.get_extra_info("ssl_object")
        chosen = tls.selected_alpn_protocol() if tls is not None else None
        if chosen == H2:
            self._hand_to(self.http2())
        elif chosen == HTTP1:
            self._hand_to(self.http1())

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
        if self.buf:
            protocol.data_received(self.buf)


async def serve(gateway: web.AppRunner, grpc: GrpcServer, host: str, port: int,
                tls: ssl.SSLContext | None = None) -> asyncio.Server:
    """Listen on HOST:PORT for both, over TLS when `tls` is given; `gateway` is set up (`await runner.setup()`)
    but has no site."""
    return await asyncio.get_running_loop().create_server(
        lambda: Sniffer(gateway.server, grpc.connection), host, port, reuse_address=True, ssl=tls,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT if tls is not None else None)
