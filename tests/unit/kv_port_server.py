"""A KV port (kvstore/kv_port.py) on a free loopback port for tests: a gateway app answering GET /hello with
`hello`, and a gRPC server with `methods`, over TLS when `tls` is given."""
from __future__ import annotations

import contextlib
import ssl
from typing import AsyncIterator

from aiohttp import web

from kvstore import kv_port
from kvstore.grpc_wire import GrpcServer, Method


@contextlib.asynccontextmanager
async def serving(methods: dict[str, Method], hello: str, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """The port number, while it serves."""
    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=hello)

    app = web.Application()
    app.router.add_get("/hello", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    grpc_server = GrpcServer(methods)
    listener = await kv_port.serve(runner, grpc_server, "127.0.0.1", 0, tls=tls)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        grpc_server.close()
        await runner.cleanup()
