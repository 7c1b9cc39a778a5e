"""The kubelet's HTTP endpoint for container logs, which the API server's `pods/log` proxies to.

    GET /containerLogs/NAMESPACE/POD/CONTAINER?follow=true&tailLines=N&previous=true&limitBytes=N
    Authorization: Bearer TOKEN        (the node's own token: the API server sends the system:nodes token)

It listens on the node's own address only. `follow` streams new output until the container is no longer
running; `previous` serves the run before the current one (after a restart).
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
from typing import Callable

from aiohttp import web

from node.pod_worker import PodWorker

log = logging.getLogger("raftkube.kubelet")
FOLLOW_POLL = 0.2
Finder = Callable[[str, str], "PodWorker | None"]


def read_log(path: str) -> bytes:
    """The run's output: the rotated part first, then the current file."""
    out = b""
    for part in (path + ".1", path):
        try:
            with open(part, "rb") as f:
                out += f.read()
        except OSError:
            pass
    return out


def tail(data: bytes, lines: int | None) -> bytes:
    if lines is None:
        return data
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def _int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer, not {value!r}") from None


class LogServer:
    def __init__(self, find: Finder, token: str | None, metrics: Callable[[], bytes] | None = None) -> None:
        self.find = find
        self.token = token
        self.metrics = metrics
        self.runner: web.AppRunner | None = None
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.logs)
        app.router.add_get("/healthz", lambda r: asyncio.sleep(0, web.Response(text="ok")))
        if self.metrics is not None:
            app.router.add_get("/metrics", self.serve_metrics)
        return app

    async def serve_metrics(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401, text="Unauthorized: the kubelet's /metrics wants the node token")
        return web.Response(body=self.metrics(), headers={"Content-Type": "text/plain; version=0.0.4"})

    async def start(self, host: str, port: int) -> int:
        self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def _authorized(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    async def logs(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.Response(status=401, text="Unauthorized: the kubelet's log endpoint wants the node token "
                                                 "(Authorization: Bearer TOKEN)")
        ns, pod, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
        q = request.query
        worker = self.find(ns, pod)
        if worker is None:
            return web.Response(status=404, text=f'pod "{pod}" in namespace "{ns}" is not running on this node')
        record = next((r for r in worker.main_records + worker.init_records if r.name == name), None)
        if record is None:
            return web.Response(status=404, text=f'container "{name}" is not in pod "{pod}"')
        previous = q.get("previous") in ("true", "1")
        path = worker.sandbox.log_path(name, previous=previous)
        if previous and not os.path.exists(path):
            return web.Response(status=400, text=f'previous terminated container "{name}" in pod "{pod}" not found')
        data = tail(read_log(path), _int(q.get("tailLines"), "tailLines"))
        limit = _int(q.get("limitBytes"), "limitBytes")
        if limit is not None:
            data = data[:max(limit, 0)]
        follow = q.get("follow") in ("true", "1") and not previous
        if not follow:
            return web.Response(body=data, content_type="text/plain")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await resp.prepare(request)
        await resp.write(data)
        await self._follow(resp, worker, record, path)
        return resp

    async def _follow(self, resp: web.StreamResponse, worker: PodWorker, record, path: str) -> None:
        position = os.path.getsize(path) if os.path.exists(path) else 0
        try:
            while True:
                size = os.path.getsize(path) if os.path.exists(path) else 0
                if size < position:  # rotated (copytruncate): the file starts again
                    position = 0
                if size > position:
                    with open(path, "rb") as f:
                        f.seek(position)
                        chunk = f.read(size - position)
                    position += len(chunk)
                    await resp.write(chunk)
                    continue
                if record.state != "running" or worker.gone:
                    return
                await asyncio.sleep(FOLLOW_POLL)
        except (ConnectionError, asyncio.CancelledError):
            return
