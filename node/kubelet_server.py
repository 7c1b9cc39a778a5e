"""The kubelet's own HTTP server, which the API server's pod subresources reach (api/pod_proxy.py): it routes, checks
who asks, finds the pod and the container; each module behind it does one job.

    GET /containerLogs/NS/POD/CONTAINER?...    node/container_logs.py     pods/log
    GET /exec/NS/POD/CONTAINER?command=...     node/exec.py               pods/exec    } WebSocket, v5.channel.k8s.io
    GET /attach/NS/POD/CONTAINER?...           node/attach.py             pods/attach  } (and v4, base64...)
    GET /portForward/NS/POD                    node/port_forward.py       pods/portforward: SPDY over WebSocket,
                   ?ports=...                  node/port_forward_channels.py   or v4.channel.k8s.io's channels
    GET /stats/summary?node=NAME               node/stats.py              metrics.k8s.io (kubectl top)
    GET /metrics                               node/metrics.py            Prometheus
    GET /healthz                               open

It listens on the node's own address, over TLS. Every path but /healthz wants the API server's client certificate
(kubelet_auth.py); a node process running several (fake) nodes serves them all on one port. A request the kubelet
cannot serve is answered before any upgrade, with a 4xx and a sentence (the API server passes it on to kubectl):
no such pod here, no such container, the container not running, a runtime with nothing to exec into, a subprotocol
not spoken here, bad options, no WebSocket. The WebSocket itself is checked last: when a handshake fails the API
server asks again plainly, with the same subprotocols, to hear the reason (api/pod_proxy.py).
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Callable

import orjson
from aiohttp import web

from node import (attach, channel_session, channels, container_logs, exec as exec_, port_forward,
                  port_forward_channels, wsstream)
from node.container_runner import ContainerRunner
from node.kubelet_auth import ClientCertificate
from node.pod_worker import PodWorker
from node.stats import StatsCollector

log = logging.getLogger("raftkube.kubelet")


class KubeletServer:
    def __init__(self, kubelets: list[Any], auth: ClientCertificate, *, metrics: Callable[[], bytes],
                 stats: StatsCollector) -> None:
        self.kubelets = kubelets
        self.auth = auth
        self.metrics = metrics
        self.stats = stats
        self.runner: web.AppRunner | None = None
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.auth.middleware(open_paths=("/healthz",))])
        app.router.add_get("/healthz", lambda r: asyncio.sleep(0, web.Response(text="ok")))
        app.router.add_get("/metrics", self.serve_metrics)
        app.router.add_get("/stats/summary", self.summary)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.logs)
        app.router.add_get("/exec/{namespace}/{pod}/{container}", self.exec)
        app.router.add_get("/attach/{namespace}/{pod}/{container}", self.attach)
        app.router.add_get("/portForward/{namespace}/{pod}", self.port_forward)
        return app

    async def start(self, host: str, port: int) -> int:
        self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_address=True, ssl_context=self.auth.context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    # -- finding what a request names -------------------------------------------------------

    def worker(self, request: web.Request) -> PodWorker:
        ns, pod = request.match_info["namespace"], request.match_info["pod"]
        found = next((w for k in self.kubelets if (w := k.find(ns, pod)) is not None), None)
        if found is None:
            raise web.HTTPNotFound(text=f'pod "{pod}" in namespace "{ns}" is not running on this node')
        return found

    def running(self, request: web.Request, worker: PodWorker) -> ContainerRunner:
        """The runner of the named container, which must be running; and the runtime must reach its processes."""
        name, pod = request.match_info["container"], worker.pod_name
        runtime = worker.ctx.runtime
        if not runtime.streaming:
            raise web.HTTPBadRequest(text=f'pod "{pod}" runs on a {runtime.kind} runtime: no process runs, so '
                                          "exec, attach and port-forward are not available")
        if not any(r.name == name for r in worker.main_records + worker.init_records):
            raise web.HTTPNotFound(text=f'container "{name}" is not in pod "{pod}"')
        runner = next((r for r in worker.runners if r.name == name), None)
        if runner is None or runner.handle is None or runner.record.state != "running":
            raise web.HTTPBadRequest(text=f'container "{name}" in pod "{pod}" is not running')
        return runner

    @staticmethod
    def negotiate(request: web.Request, supported: tuple[str, ...]) -> str:
        """The WebSocket subprotocol to answer with: the first the client asks for that is spoken here, as upstream's
        handshake picks it, or wsstream.NONE when it asks for none (upstream then speaks channel.k8s.io); a 400 that
        says what is spoken here otherwise. A request that asks for none and is no WebSocket (kubectl's SPDY
        fallback) hears at once that SPDY is not spoken."""
        asked = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        if not asked:
            KubeletServer.require_websocket(request, supported)
            return wsstream.NONE
        chosen = next((p for p in asked if p in supported), None)
        if chosen is None:
            raise web.HTTPBadRequest(text=f"none of the WebSocket subprotocols asked for ({', '.join(asked)}) is "
                                          f"spoken here: {', '.join(p for p in supported if p)}")
        return chosen

    @staticmethod
    def require_websocket(request: web.Request, supported: tuple[str, ...]) -> None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise web.HTTPBadRequest(text=f"{request.path.split('/')[1]} is served over WebSocket "
                                          f"({', '.join(p for p in supported if p)}); SPDY is not supported")

    # -- the routes -------------------------------------------------------------------------

    async def serve_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics(), headers={"Content-Type": "text/plain; version=0.0.4"})

    async def summary(self, request: web.Request) -> web.Response:
        name = request.query.get("node")
        if name is None and len(self.kubelets) == 1:
            name = self.kubelets[0].name
        kubelet = next((k for k in self.kubelets if k.name == name), None)
        if kubelet is None:
            raise web.HTTPNotFound(text=f"node {name!r} is not served here (node=NAME names one of "
                                        f"{', '.join(k.name for k in self.kubelets[:5])}...)")
        return web.Response(body=orjson.dumps(self.stats.summary(kubelet)), content_type="application/json")

    async def logs(self, request: web.Request) -> web.StreamResponse:
        worker = self.worker(request)
        name = request.match_info["container"]
        record = next((r for r in worker.main_records + worker.init_records if r.name == name), None)
        if record is None:
            raise web.HTTPNotFound(text=f'container "{name}" is not in pod "{worker.pod_name}"')
        return await container_logs.serve(
            request, log_path=worker.sandbox.log_path(name), previous_path=worker.sandbox.log_path(name, previous=True),
            record=record, gone=lambda: worker.gone, restarts=worker.restarts_after, pod=worker.pod_name)

    def _stream_options(self, request: web.Request, *, exec_: bool) -> channels.StreamOptions:
        try:
            return channels.stream_options(request.query, exec_=exec_)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None

    async def open_channels(self, request: web.Request, opts: channels.StreamOptions) -> channel_session.ChannelSession:
        """exec's or attach's WebSocket, open, with the empty message that says so (as upstream's kubelet sends)."""
        protocol = self.negotiate(request, channels.PROTOCOLS)
        self.require_websocket(request, channels.PROTOCOLS)
        session = await channel_session.accept(request, protocol)
        await session.send(channels.first_read(opts), b"")
        return session

    async def exec(self, request: web.Request) -> web.StreamResponse:
        worker = self.worker(request)
        runner = self.running(request, worker)
        opts = self._stream_options(request, exec_=True)
        session = await self.open_channels(request, opts)
        log.info("exec in %s/%s: %s", worker.key, runner.name, " ".join(opts.command)[:200])
        await exec_.run(session, opts, lambda: worker.ctx.runtime.exec(
            worker.sandbox, runner.spec, runner.env, list(opts.command), stdin=opts.stdin, tty=opts.tty))
        return session.ws

    async def attach(self, request: web.Request) -> web.StreamResponse:
        worker = self.worker(request)
        runner = self.running(request, worker)
        opts = self._stream_options(request, exec_=False)
        session = await self.open_channels(request, opts)
        record = runner.record
        log_ = container_logs.RunLog(worker.sandbox.log_path(runner.name),
                                     container_logs.run_of(record, lambda: worker.gone))
        stdin = worker.ctx.runtime.stdin_path(worker.sandbox, runner.name) if runner.spec.get("stdin") else None
        await attach.run(session, opts, log_, stdin if stdin and os.path.exists(stdin) else None)
        return session.ws

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        """kubectl's SPDY session, or the channels of the Python client (and upstream's older clients), by the
        subprotocol asked for."""
        worker = self.worker(request)
        runtime = worker.ctx.runtime
        if not runtime.streaming:
            raise web.HTTPBadRequest(text=f'pod "{worker.pod_name}" runs on a {runtime.kind} runtime: nothing '
                                          "listens, so port-forward is not available")
        supported = (port_forward.PROTOCOL, *port_forward_channels.PROTOCOLS)
        try:
            ports = port_forward_channels.parse_ports(request.query)
            protocol = self.negotiate(request, supported)
            if protocol != port_forward.PROTOCOL:
                port_forward_channels.check_ports(ports, wsstream.PROTOCOLS[protocol])
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        self.require_websocket(request, supported)
        where = {"host": worker.sandbox.ip, "pod": worker.pod_name, "uid": worker.uid}
        if protocol != port_forward.PROTOCOL:
            session = await channel_session.accept(request, protocol)
            await port_forward_channels.run(session, ports, **where)
            return session.ws
        ws = web.WebSocketResponse(protocols=(protocol,), max_msg_size=port_forward.spdy.MAX_FRAME * 2)
        await ws.prepare(request)
        await port_forward.PortForwardSession(ws, **where).run()
        return ws
