"""The kube API's load balancer in `raftkube up`: a TCP proxy in front of every master.

Every second it asks each master's `/readyz` (ready: it can reach a quorum), the masters being those
cluster.json names then (so `raftkube member add|remove` reaches it). A new connection goes
to the next ready master; when none is ready (quorum lost) it still goes to a master that answers,
so clients get the API's own no-quorum error and `resourceVersion=0` reads still work, never a
refused connection. TLS passes through untouched: clients check the masters' certificate.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from typing import Callable

import aiohttp

log = logging.getLogger("raftkube.balancer")
CHECK_EVERY = 1.0


class Balancer:
    def __init__(self, backends: list[str], ca_file: str | None,
                 discover: Callable[[], list[str]] | None = None) -> None:
        self.backends = backends  # "https://host:port" of each master's kube API
        self.discover = discover  # asked before each round of checks: masters added or removed since
        self.ready: set[str] = set()
        self.alive: set[str] = set()
        self._turn = itertools.count()
        self._clients: dict[str, set[asyncio.StreamWriter]] = {}  # backend -> the client ends piped to it
        self._tls = ssl.create_default_context(cafile=ca_file) if ca_file else None

    async def check(self, session: aiohttp.ClientSession) -> None:
        async def probe(url: str) -> tuple[str, int | None]:
            try:
                async with session.get(url + "/readyz", timeout=aiohttp.ClientTimeout(total=1.5)) as r:
                    return url, r.status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                return url, None

        if self.discover is not None:
            self.backends = self.discover() or self.backends
        results = await asyncio.gather(*(probe(u) for u in self.backends))
        self.ready = {u for u, status in results if status == 200}
        self.alive = {u for u, status in results if status is not None}

    async def check_forever(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self._tls or True)
        async with aiohttp.ClientSession(connector=connector) as session:
            while True:
                await self.check(session)
                await asyncio.sleep(CHECK_EVERY)

    def candidates(self) -> list[str]:
        """Ready masters first (taking turns), then the ones that answer, then the rest."""
        turn = next(self._turn)
        order = self.backends[turn % len(self.backends):] + self.backends[:turn % len(self.backends)]
        return sorted(order, key=lambda u: (u not in self.ready, u not in self.alive))

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        for url in self.candidates():
            host, _, port = url.split("://", 1)[1].rpartition(":")
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
            except (OSError, asyncio.TimeoutError):
                continue
            piped = self._clients.setdefault(url, set())
            piped.add(client_writer)
            try:
                await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client_writer))
            except asyncio.CancelledError:  # the balancer stops: close this connection, end quietly (Python 3.11
                client_writer.close()  # logs a traceback for a connection handler that ends cancelled)
                writer.close()
            finally:
                piped.discard(client_writer)
            return
        client_writer.close()

    def drop(self, url: str) -> None:
        """Close every client connection piped to `url` now (its master was killed): a client's next request finds
        its kept-alive connection closed and opens a new one, rather than racing the backend's end of the pipe."""
        for client_writer in list(self._clients.get(url, ())):
            client_writer.close()

    async def serve(self, host: str, port: int) -> None:
        server = await asyncio.start_server(self.handle, host, port)
        checker = asyncio.create_task(self.check_forever())
        try:
            async with server:
                await server.serve_forever()
        finally:
            checker.cancel()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass
